package keepalived

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// File is one configuration file's name and content, as an include
// callback returns it.
type File struct {
	Name string
	Data []byte
}

// Pos is where a statement was written: the file as it was named to
// ParseConf or found by an include, and the 1-based line.
type Pos struct {
	File string
	Line int
}

// String is "file:line", or "" for the zero Pos (something not written).
func (p Pos) String() string {
	if p.Line == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Problem is a line keepalived reads differently from what it says, or
// one this reader does not model and skipped (sequence and list lines).
// Msg says what keepalived does with it.
type Problem struct {
	Pos Pos
	Msg string
	// Syntax: keepalived logs a complaint about the line and skips or
	// changes what it says. Fatal: keepalived refuses the whole file and
	// exits ("permanent error CONFIG"): nothing of it runs.
	Syntax, Fatal bool
	// Subject is the block whose reading it changes ("vrrp_instance VI_1",
	// "vrrp_script chk", "global_defs", ...), "" when none.
	Subject string
	// Fix is what to write instead, "" when the message says it.
	Fix string
}

// maxIncludeDepth bounds include nesting.
const maxIncludeDepth = 16

// token is one word of a line. Quoted words are never braces.
type token struct {
	text   string
	quoted bool
}

// line is one line's words, after comments, quotes and includes. raw is
// the line after definitions were expanded: keepalived reads a script's
// command again from it, with other quoting rules (see command).
type line struct {
	pos  Pos
	toks []token
	raw  string
	bad  string // why keepalived would misread it, e.g. an open quote
}

// lexer turns files into lines, following includes in place as keepalived
// does: an include is textual and may appear anywhere, even in a block.
type lexer struct {
	include  func(pattern string) ([]File, error)
	lines    []line
	problems []Problem
	defs     map[string]string
	chain    []string
	files    []string
	configID string
	// looped is set once an include loop was found: keepalived recurses
	// into it until it runs out of file descriptors, so reading further
	// includes means nothing, and following them would take factorial time.
	looped bool
}

func (lx *lexer) problem(pos Pos, fatal bool, format string, args ...any) {
	lx.problems = append(lx.problems, Problem{Pos: pos, Msg: fmt.Sprintf(format, args...), Syntax: true, Fatal: fatal})
}

// fix sets the fix of the problem just reported.
func (lx *lexer) fix(fix string) { lx.problems[len(lx.problems)-1].Fix = fix }

func (lx *lexer) file(name string, data []byte) error {
	lx.chain = append(lx.chain, name)
	if !slices.Contains(lx.files, name) {
		lx.files = append(lx.files, name)
	}
	defer func() { lx.chain = lx.chain[:len(lx.chain)-1] }()
	rows := strings.Split(string(data), "\n")
	for i := 0; i < len(rows); i++ {
		pos := Pos{File: name, Line: i + 1}
		raw := strings.TrimRight(rows[i], "\r")
		trimmed := strings.TrimLeft(raw, " \t")
		switch {
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, "~SEQ") || strings.HasPrefix(trimmed, "~LST"):
			lx.problems = append(lx.problems, Problem{Pos: pos, Msg: "sequence and list lines are not checked"})
			continue
		case trimmed[0] == '@':
			var ok bool
			if raw, ok = lx.conditional(pos, trimmed); !ok {
				continue
			}
			// A definition may be conditional too.
			if t := strings.TrimLeft(raw, " \t"); t != "" && t[0] == '$' && lx.define(t) {
				continue
			}
		case trimmed[0] == '$' && lx.define(trimmed):
			// keepalived 2.2.7 continues a definition ending in a
			// backslash on the next lines; such a value is not expanded
			// inside other lines.
			if strings.HasSuffix(trimmed, "\\") {
				name, _, _ := strings.Cut(trimmed[1:], "=")
				delete(lx.defs, name)
				for i+1 < len(rows) && strings.HasSuffix(strings.TrimRight(rows[i], "\r"), "\\") {
					i++
				}
				lx.problems = append(lx.problems, Problem{Pos: pos, Msg: fmt.Sprintf("multi-line definition $%s: keepalived 2.2.7 does not expand it inside other lines; vipkit leaves it unexpanded too", name)})
			}
			continue
		}
		var kept []string
		raw, kept = lx.expand(raw)
		for _, name := range kept {
			lx.problem(pos, false, "`%s`: keepalived 2.2.7 expands a bare $%s only before whitespace or the end of the line, so it stays \"$%s\" here; write ${%s}", strings.TrimSpace(raw), name, name, name)
			lx.fix(fmt.Sprintf("write ${%s}", name))
		}
		// keepalived handles include lines before splitting words: quotes
		// are part of the file name.
		if f := strings.Fields(strings.TrimSpace(raw)); len(f) > 0 && isInclude(f[0]) {
			if err := lx.includeLine(name, pos, f); err != nil {
				return err
			}
			continue
		}
		l := lexLine(pos, raw, lexConf)
		if len(l.toks) == 0 {
			continue
		}
		l.raw = raw
		lx.lines = append(lx.lines, l)
	}
	return nil
}

// conditional reads "@ID line" (applies when keepalived's config id is ID)
// and "@^ID line" (applies when it is not). Without a config id the line
// is read as if it applied, and said so.
func (lx *lexer) conditional(pos Pos, s string) (string, bool) {
	id, rest, _ := strings.Cut(s[1:], " ")
	if i := strings.IndexByte(id, '\t'); i >= 0 {
		id, rest = id[:i], id[i+1:]+" "+rest
	}
	not := strings.HasPrefix(id, "^")
	id = strings.TrimPrefix(id, "^")
	if lx.configID == "" {
		lx.problems = append(lx.problems, Problem{Pos: pos, Msg: "conditional line (@...) read as if it applied: the config id is unknown"})
		return rest, true
	}
	return rest, (id == lx.configID) != not
}

func isInclude(kw string) bool {
	switch kw {
	case "include", "includer", "includem", "includew", "includeb", "includea", "includet":
		return true
	}
	return false
}

func (lx *lexer) includeLine(name string, pos Pos, f []string) error {
	if len(f) != 2 {
		lx.problem(pos, false, "%s takes exactly one file name or pattern: keepalived skips this line", f[0])
		return nil
	}
	pattern := f[1]
	if strings.ContainsAny(pattern, "\"'") {
		lx.problem(pos, false, "include %s: keepalived takes the quotes as part of the file name, matches no file and includes nothing (\"Config files missing\")", pattern)
		lx.fix("remove the quotes around the file name")
		return nil
	}
	if !filepath.IsAbs(pattern) {
		// keepalived changes directory to the including file's.
		pattern = filepath.Join(filepath.Dir(name), pattern)
	}
	if lx.include == nil {
		lx.problems = append(lx.problems, Problem{Pos: pos, Msg: fmt.Sprintf("include %s not followed", pattern)})
		return nil
	}
	if lx.looped {
		return nil
	}
	files, err := lx.include(pattern)
	if err != nil {
		return fmt.Errorf("parse keepalived config: include %s at %s: %w", pattern, pos, err)
	}
	if len(files) == 0 {
		lx.problem(pos, false, "include %s matches no file: keepalived logs \"Config files missing\" and reads on without it", pattern)
	}
	for _, f := range files {
		if slices.Contains(lx.chain, f.Name) {
			lx.looped = true
			lx.problem(pos, true, "include %s includes %s again, which is already being read: keepalived 2.2.7 recurses into it without end (it reopens the files until it runs out of descriptors and never loads this configuration)", pattern, f.Name)
			lx.fix("include each file once: files that a glob matches must not include that glob (or the file that includes them)")
			return nil
		}
		if len(lx.chain) >= maxIncludeDepth {
			lx.problem(pos, false, "include of %s nested more than %d deep: not followed", f.Name, maxIncludeDepth)
			return nil
		}
		if err := lx.file(f.Name, f.Data); err != nil {
			return err
		}
		if lx.looped {
			return nil
		}
	}
	return nil
}

// define records a "$NAME=value" parameter definition. Multi-line
// definitions (ending in a backslash) are not supported.
func (lx *lexer) define(s string) bool {
	name, value, ok := strings.Cut(s[1:], "=")
	if !ok || name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isNameRune(r) }) {
		return false
	}
	if lx.defs == nil {
		lx.defs = map[string]string{}
	}
	lx.defs[name] = strings.TrimSpace(value)
	return true
}

func isNameRune(r rune) bool {
	return r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// expand replaces ${NAME} and $NAME with defined parameters. keepalived
// 2.2.7 expands a bare $NAME only when whitespace or the end of the line
// follows it: "$VIP/32", "$VIP;" and "... $VIP" before a closing quote
// stay as written.
// It also returns the defined names it left alone.
func (lx *lexer) expand(s string) (string, []string) {
	if len(lx.defs) == 0 || !strings.Contains(s, "$") {
		return s, nil
	}
	var kept []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		j, name := i+1, ""
		if j < len(s) && s[j] == '{' {
			if k := strings.IndexByte(s[j:], '}'); k > 0 {
				name, j = s[j+1:j+k], j+k+1
			}
		} else {
			for j < len(s) && isNameRune(rune(s[j])) {
				j++
			}
			name = s[i+1 : j]
			if j < len(s) && s[j] != ' ' && s[j] != '\t' {
				if _, ok := lx.defs[name]; ok {
					kept = append(kept, name)
				}
				name = ""
			}
		}
		if v, ok := lx.defs[name]; ok && name != "" {
			b.WriteString(v)
			i = j - 1
			continue
		}
		b.WriteByte('$')
	}
	return b.String(), kept
}

// lexMode is how a line is read: as a configuration line, or a second
// time as a script's line (single quotes quote too), keeping the
// backslashes inside quotes for SplitCommand (keepalived 2.3) or not.
type lexMode uint8

const (
	lexConf lexMode = iota
	lexScript
	lexScriptRaw
)

// lexLine splits a line into words the way keepalived reads them: '#' and
// '!' outside quotes start a comment, braces are words of their own, and
// "..." keeps whitespace, loses the quotes and may abut other text
// (abc"d e"f is one word). Backslash escapes work inside quotes
// (kept as written with lexScriptRaw). Single
// quotes are plain characters, except for a script's command line, which
// keepalived reads again with '...' quoting too (mode).
func lexLine(pos Pos, s string, mode lexMode) line {
	script := mode != lexConf
	unescape := unescape
	if mode == lexScriptRaw {
		unescape = func(s string) string { return s }
	}
	l := line{pos: pos}
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
			continue
		case c == '#' || c == '!':
			return l
		case c == '{' || c == '}':
			l.toks = append(l.toks, token{text: string(c)})
			i++
			continue
		}
		var b strings.Builder
		quoted := false
	word:
		for i < len(s) {
			c := s[i]
			switch c {
			case ' ', '\t', '{', '}', '#', '!':
				break word
			case '\'':
				if !script {
					b.WriteByte(c)
					i++
					continue
				}
				fallthrough
			case '"':
				quoted = true
				end := -1
				for j := i + 1; j < len(s); j++ {
					if s[j] == '\\' {
						j++
						continue
					}
					if s[j] == c {
						end = j
						break
					}
				}
				if end < 0 {
					l.bad = fmt.Sprintf("unterminated %c quote", c)
					b.WriteString(unescape(s[i+1:]))
					i = len(s)
					break word
				}
				b.WriteString(unescape(s[i+1 : end]))
				i = end + 1
			default:
				b.WriteByte(c)
				i++
			}
		}
		l.toks = append(l.toks, token{text: b.String(), quoted: quoted})
	}
	return l
}

// unescape interprets backslash escapes in quoted strings. keepalived
// knows more (\a, \nnn, \xHH, \cC, ...); paths and arguments need only \t,
// \n and a backslash taking the next character literally.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			i++
			c = s[i]
			switch c {
			case 't':
				c = '\t'
			case 'n':
				c = '\n'
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// SplitCommand splits a script string into argv the way keepalived does
// when it runs it: unquoted whitespace separates arguments, '...' and "..."
// protect whitespace and are removed, and a backslash outside single quotes
// takes the next character literally. An open quote is an error: keepalived
// then refuses to run the script.
func SplitCommand(s string) ([]string, error) {
	var (
		argv    []string
		b       strings.Builder
		inWord  bool
		quote   byte
		escaped bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			b.WriteByte(c)
			escaped = false
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case c == '\\':
			escaped, inWord = true, true
		case quote == '"':
			if c == '"' {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			if inWord {
				argv = append(argv, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, invalid(fmt.Sprintf("split command %q", s), "missing closing %c quote", quote)
	}
	if inWord {
		argv = append(argv, b.String())
	}
	return argv, nil
}
