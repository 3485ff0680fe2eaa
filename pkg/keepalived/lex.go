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

// Problem is a line keepalived would complain about (Syntax) or one this
// reader does not model and skipped (conditional, sequence and list lines).
type Problem struct {
	Pos    Pos
	Msg    string
	Syntax bool
}

// maxIncludeDepth bounds include nesting; it also stops include loops.
const maxIncludeDepth = 16

// token is one word of a line. Quoted words are never braces.
type token struct {
	text   string
	quoted bool
}

// line is one line's words, after comments, quotes and includes.
type line struct {
	pos  Pos
	toks []token
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
}

func (lx *lexer) file(name string, data []byte) error {
	if len(lx.chain) > maxIncludeDepth || slices.Contains(lx.chain, name) {
		lx.problems = append(lx.problems, Problem{Pos: Pos{File: name}, Msg: fmt.Sprintf("include of %s nested too deep or in a loop; skipped", name), Syntax: true})
		return nil
	}
	lx.chain = append(lx.chain, name)
	if !slices.Contains(lx.files, name) {
		lx.files = append(lx.files, name)
	}
	defer func() { lx.chain = lx.chain[:len(lx.chain)-1] }()
	for i, raw := range strings.Split(string(data), "\n") {
		pos := Pos{File: name, Line: i + 1}
		raw = strings.TrimRight(raw, "\r")
		trimmed := strings.TrimLeft(raw, " \t")
		switch {
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, "~SEQ") || strings.HasPrefix(trimmed, "~LST"):
			lx.problems = append(lx.problems, Problem{Pos: pos, Msg: "sequence and list lines are not checked"})
			continue
		case trimmed[0] == '@':
			// Whether the line applies depends on keepalived's config id;
			// reading it keeps the braces balanced.
			raw = ""
			if i := strings.IndexAny(trimmed, " \t"); i > 0 {
				raw = trimmed[i:]
			}
			lx.problems = append(lx.problems, Problem{Pos: pos, Msg: "conditional line (@...) read as if it applied"})
		case trimmed[0] == '$' && lx.define(trimmed):
			continue
		}
		l := lexLine(pos, lx.expand(raw))
		if len(l.toks) == 0 {
			continue
		}
		if kw := l.toks[0].text; !l.toks[0].quoted && isInclude(kw) {
			if err := lx.includeLine(name, l); err != nil {
				return err
			}
			continue
		}
		lx.lines = append(lx.lines, l)
	}
	return nil
}

func isInclude(kw string) bool {
	switch kw {
	case "include", "includer", "includem", "includew", "includeb", "includea", "includet":
		return true
	}
	return false
}

func (lx *lexer) includeLine(name string, l line) error {
	if len(l.toks) != 2 {
		lx.problems = append(lx.problems, Problem{Pos: l.pos, Msg: "include takes exactly one file name or pattern", Syntax: true})
		return nil
	}
	pattern := l.toks[1].text
	if !filepath.IsAbs(pattern) {
		// keepalived changes directory to the including file's.
		pattern = filepath.Join(filepath.Dir(name), pattern)
	}
	if lx.include == nil {
		lx.problems = append(lx.problems, Problem{Pos: l.pos, Msg: fmt.Sprintf("include %s not followed", pattern)})
		return nil
	}
	files, err := lx.include(pattern)
	if err != nil {
		return fmt.Errorf("parse keepalived config: include %s at %s: %w", pattern, l.pos, err)
	}
	for _, f := range files {
		if err := lx.file(f.Name, f.Data); err != nil {
			return err
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

// expand replaces ${NAME} and $NAME with defined parameters.
func (lx *lexer) expand(s string) string {
	if len(lx.defs) == 0 || !strings.Contains(s, "$") {
		return s
	}
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
		}
		if v, ok := lx.defs[name]; ok && name != "" {
			b.WriteString(v)
			i = j - 1
			continue
		}
		b.WriteByte('$')
	}
	return b.String()
}

// lexLine splits a line into words the way keepalived reads them: '#' and
// '!' outside quotes start a comment, braces are words of their own, and
// "..." or '...' keep whitespace, lose the quotes and may abut other text
// (abc"d e"f is one word). Backslash escapes work inside quotes.
func lexLine(pos Pos, s string) line {
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
			case '"', '\'':
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
