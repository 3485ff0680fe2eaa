package keepalived

import (
	"fmt"
	"slices"
	"strings"
)

// frame is an open block while building the tree: the statement and the
// context its lines are read in ("" for a value or opaque block).
type frame struct {
	s   *stmt
	ctx string
	// opaque blocks nest by braces alone.
	opaque bool
	// brace: the block keyword's '{' is still to come (next line).
	brace bool
	// dropParent: the '}' closing this block closes the block around it
	// too, which keepalived then drops (a second sync group list, 2.3).
	dropParent bool
}

// tree nests lines into statements the way keepalived reads them: a known
// block keyword opens a block (its '{' on the same or the next line), '}'
// closes the innermost one, and an unknown keyword is skipped with the
// '{' after it, so that its '}' closes the block around it.
func (c *Conf) tree(lines []line) []*stmt {
	root := &stmt{hasBlock: true}
	stack := []*frame{{s: root, ctx: "top"}}
	subject := func() string {
		if len(stack) < 2 {
			return ""
		}
		s := stack[1].s
		return strings.TrimSpace(s.arg(0) + " " + s.arg(1))
	}
	for _, l := range lines {
		toks := l.toks
		if top := stack[len(stack)-1]; top.brace {
			top.brace = false
			if len(toks) > 0 && !toks[0].quoted && toks[0].text == "{" {
				toks = toks[1:]
			} else {
				c.report(l.pos, subject(), false, "'{' missing after %q: keepalived reads the lines that follow as its block anyway (\"'{' missing from beginning of block\")", top.s.arg(0))
			}
		}
		for i := 0; i < len(toks); {
			t := toks[i]
			top := stack[len(stack)-1]
			if !t.quoted && t.text == "}" {
				if len(stack) == 1 {
					c.report(l.pos, "", false, "'}' without a matching '{': keepalived skips it (\"Unknown keyword '}'\")")
				} else {
					f := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					if f.dropParent && len(stack) > 1 {
						stack[len(stack)-1].s.dropped = true
						stack = stack[:len(stack)-1]
					}
				}
				i++
				continue
			}
			if !t.quoted && t.text == "{" {
				if top.opaque {
					s := &stmt{pos: l.pos, hasBlock: true, subject: subject()}
					top.s.block = append(top.s.block, s)
					stack = append(stack, &frame{s: s, opaque: true})
				} else {
					c.report(l.pos, subject(), false, "unexpected '{': keepalived ignores it, so the next '}' closes the enclosing block")
				}
				i++
				continue
			}
			j := i
			for j < len(toks) && (toks[j].quoted || (toks[j].text != "{" && toks[j].text != "}")) {
				j++
			}
			words := make([]string, 0, j-i)
			for _, t := range toks[i:j] {
				words = append(words, t.text)
			}
			s := &stmt{pos: l.pos, words: words, raw: l.raw, bad: l.bad}
			top.s.block = append(top.s.block, s)
			if len(stack) == 1 {
				s.subject = strings.TrimSpace(s.arg(0) + " " + s.arg(1))
			} else {
				s.subject = subject()
			}
			open := j < len(toks) && toks[j].text == "{"
			if f := c.open(top, s, open, l.pos); f != nil {
				stack = append(stack, f)
				if open {
					j++
				}
			}
			i = j
		}
	}
	for _, f := range stack[1:] {
		c.report(f.s.pos, f.s.subject, false, "block %q is never closed with '}'", strings.Join(f.s.words, " "))
	}
	return root.block
}

// open decides whether s opens a block, reporting what keepalived does
// with keywords it does not know or lines it cannot take.
func (c *Conf) open(top *frame, s *stmt, brace bool, pos Pos) *frame {
	kw := s.arg(0)
	switch {
	case top.opaque:
		if brace {
			s.hasBlock = true
			return &frame{s: s, opaque: true}
		}
		return nil
	case top.ctx == "":
		return nil // an entry of a value block
	case top.ctx == "global_defs":
		if globalBlocks[kw] {
			s.hasBlock = true
			return &frame{s: s, brace: !brace}
		}
		return nil
	}
	spec, known := keywords[top.ctx][kw]
	if !known {
		if top.ctx == "top" {
			if kw != "track_process" { // vipctl check names the block keepalived wants
				c.report(pos, "", false, "unknown top-level keyword %q (`%s`): keepalived skips it and what it contains (\"Unknown keyword\")", kw, strings.Join(s.words, " "))
			}
			if brace {
				// Its lines would be unknown top-level keywords too.
				s.hasBlock = true
				return &frame{s: s, opaque: true}
			}
			return nil
		}
		msg := fmt.Sprintf("unknown keyword %q in %s: keepalived skips the line (\"Unknown keyword\")", kw, top.ctx)
		if brace {
			msg += " and ignores its '{', so the '}' that was meant to close it closes " + top.ctx + " instead: every line after that is read outside of it"
		}
		c.report(pos, s.subject, false, "%s", msg)
		c.fix("correct the keyword's spelling (see docs/keepalived-conf.md for the keywords keepalived knows) or remove the line")
		return nil
	}
	if spec.arg && len(s.words) < 2 {
		c.report(pos, s.subject, true, "%s has no parameter: keepalived refuses the configuration (\"missing a parameter\", permanent error CONFIG) and runs nothing", kw)
		c.fix("give the keyword its parameter or remove the line")
	}
	if spec.kind == kwPlain {
		if brace {
			c.report(pos, s.subject, false, "%s does not take a block: keepalived ignores the '{', so the next '}' closes %s", kw, top.ctx)
		}
		return nil
	}
	s.hasBlock = true
	if c.v23 && top.ctx == "vrrp_sync_group" && kw == "group" && slices.ContainsFunc(top.s.block[:len(top.s.block)-1], func(p *stmt) bool { return p.arg(0) == "group" && p.hasBlock }) {
		// keepalived 2.3 skips the second list (skip_block) past its own
		// '}' and out of the group's block, whose end it never sees.
		return &frame{s: s, opaque: true, brace: !brace, dropParent: true}
	}
	if !brace && len(s.words) > 1 && top.ctx != "top" {
		c.report(pos, s.subject, false, "block %s has extra parameters %q and no '{': keepalived ignores them and reads the following lines as the block", kw, strings.Join(s.words[1:], " "))
	}
	f := &frame{s: s, brace: !brace}
	switch spec.kind {
	case kwSub:
		f.ctx = spec.sub
		if spec.sub == "" {
			f.ctx = kw
		}
	case kwOpaque:
		f.opaque = true
	}
	return f
}

// command reads "keyword SCRIPT [user [group]]". keepalived reads a
// script's line a second time for this, with single quotes quoting too:
// `notify_master '/x a'` runs /x with argument a.
func (c *Conf) command(s *stmt) *Command {
	words := s.words
	bad := s.bad
	if s.raw != "" {
		mode := lexScript
		if c.v23 {
			mode = lexScriptRaw
		}
		l := lexLine(s.pos, s.raw, mode)
		for i, t := range l.toks {
			if t.text == s.arg(0) && !t.quoted {
				words = nil
				for _, t := range l.toks[i:] {
					if !t.quoted && (t.text == "{" || t.text == "}") {
						break
					}
					words = append(words, t.text)
				}
				break
			}
		}
		bad = l.bad
	}
	at := func(i int) string {
		if i < len(words) {
			return words[i]
		}
		return ""
	}
	cmd := &Command{Keyword: s.arg(0), User: at(2), Group: at(3), Pos: s.pos, Err: bad}
	if r := strings.TrimRight(s.raw, " \t"); strings.HasSuffix(r, `\`) && !strings.HasSuffix(r, `\\`) {
		// keepalived continues no line but a definition: it cannot parse
		// the script ("Missing escape char at end") and drops it.
		cmd.Err = "the line ends in a backslash, which keepalived does not read as a continuation"
	}
	if len(words) < 2 {
		if cmd.Keyword != "notify_deleted" {
			cmd.Err = "no command given"
		}
		return cmd
	}
	cmd.Script = words[1]
	argv, err := SplitCommand(cmd.Script)
	switch {
	case err != nil:
		cmd.Err = err.Error()
	case len(argv) == 0:
		cmd.Err = "empty command"
	}
	cmd.Argv = argv
	return cmd
}
