package ptxemu

import (
	"fmt"
	"strconv"
	"strings"
)

// token is one lexeme of PTX text.
type token struct {
	s    string
	line int
	kind byte // 'i' identifier/directive/register, 'n' number, 's' string, else the punctuation byte
}

func lex(src string) ([]token, error) {
	var out []token
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == 0:
			i++
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 4
		case c == '"':
			j := i + 1
			for j < len(src) && src[j] != '"' && src[j] != '\n' {
				j++
			}
			if j >= len(src) || src[j] != '"' {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			out = append(out, token{s: src[i+1 : j], line: line, kind: 's'})
			i = j + 1
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentChar(src[j]) {
				j++
			}
			out = append(out, token{s: src[i:j], line: line, kind: 'i'})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(src) && (isIdentChar(src[j]) && src[j] != '%' && src[j] != '$') {
				j++
			}
			out = append(out, token{s: src[i:j], line: line, kind: 'n'})
			i = j
		case strings.IndexByte(",;:{}[]()|+-!@<>=", c) >= 0:
			out = append(out, token{s: src[i : i+1], line: line, kind: c})
			i++
		default:
			return nil, fmt.Errorf("line %d: unexpected character %q", line, c)
		}
	}
	return out, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c == '%' || c == '.' || (c|0x20) >= 'a' && (c|0x20) <= 'z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// Parsed, not yet decoded, forms.

type operandAST struct {
	kind  byte // 'r' register/symbol name, 'n' number, 'a' address, 'v' vector, '_' sink
	name  string
	pair  string // second register of "a|b"
	num   string // literal text (with sign)
	not   bool   // "!%p"
	off   int64  // address offset
	elems []operandAST
}

type stmt struct {
	line int
	// One of: an instruction (op != ""), a label, a declaration, a scope
	// open/close.
	label    string
	decl     *varDecl
	scope    int // +1 open, -1 close
	guard    string
	guardNeg bool
	op       string
	ops      []operandAST
}

type varDecl struct {
	space string // ".reg", ".shared", ".local", ".global", ".const", ".param"
	align int
	typ   string
	names []declName
	ext   bool // .extern
	init  []string
	line  int
}

type declName struct {
	name  string
	count int // "<N>" register ranges; 0 when absent
	dims  []int
	open  bool // "[]"
}

type funcAST struct {
	name   string
	entry  bool
	params []*varDecl
	body   []stmt
	line   int
	// .maxntid / .reqntid performance directives (launch bounds)
	maxntid, reqntid []int
}

type moduleAST struct {
	version, target string
	addrSize        int
	vars            []*varDecl
	funcs           []*funcAST
}

type parser struct {
	t []token
	i int
}

func (p *parser) eof() bool { return p.i >= len(p.t) }

func (p *parser) peek() token {
	if p.eof() {
		return token{line: p.lastLine()}
	}
	return p.t[p.i]
}

func (p *parser) lastLine() int {
	if len(p.t) == 0 {
		return 0
	}
	return p.t[len(p.t)-1].line
}

func (p *parser) next() token {
	t := p.peek()
	p.i++
	return t
}

func (p *parser) errf(format string, a ...any) error {
	return fmt.Errorf("PTX line %d: %s", p.peek().line, fmt.Sprintf(format, a...))
}

func (p *parser) expect(s string) error {
	if t := p.peek(); t.s != s || t.kind == 's' {
		return p.errf("expected %q, found %q", s, t.s)
	}
	p.i++
	return nil
}

func (p *parser) accept(s string) bool {
	if t := p.peek(); t.s == s && t.kind != 's' && !p.eof() {
		p.i++
		return true
	}
	return false
}

func (p *parser) number() (int64, error) {
	neg := p.accept("-")
	t := p.next()
	if t.kind != 'n' {
		return 0, fmt.Errorf("PTX line %d: expected a number, found %q", t.line, t.s)
	}
	v, err := parseIntLit(t.s)
	if err != nil {
		return 0, fmt.Errorf("PTX line %d: %w", t.line, err)
	}
	if neg {
		v = -v
	}
	return v, nil
}

func parseIntLit(s string) (int64, error) {
	s = strings.TrimSuffix(s, "U")
	var u uint64
	var err error
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		u, err = strconv.ParseUint(s[2:], 16, 64)
	case strings.HasPrefix(s, "0b") || strings.HasPrefix(s, "0B"):
		u, err = strconv.ParseUint(s[2:], 2, 64)
	case len(s) > 1 && s[0] == '0':
		u, err = strconv.ParseUint(s[1:], 8, 64)
	default:
		u, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return 0, fmt.Errorf("bad integer literal %q", s)
	}
	return int64(u), nil
}

func parseModule(src string) (*moduleAST, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{t: toks}
	m := &moduleAST{}
	for !p.eof() {
		t := p.next()
		switch t.s {
		case ".version":
			v := p.next()
			m.version = v.s
		case ".target":
			v := p.next()
			m.target = v.s
			for p.accept(",") {
				p.next()
			}
		case ".address_size":
			n, err := p.number()
			if err != nil {
				return nil, err
			}
			m.addrSize = int(n)
		case ".visible", ".weak", ".extern":
			if t.s == ".extern" && (p.peek().s == ".shared" || p.peek().s == ".global" || p.peek().s == ".const") {
				d, err := p.varDecl(p.next().s)
				if err != nil {
					return nil, err
				}
				d.ext = true
				m.vars = append(m.vars, d)
			}
			// otherwise a linkage prefix of the next declaration
		case ".entry", ".func":
			f, err := p.function(t.s == ".entry", t.line)
			if err != nil {
				return nil, err
			}
			if f != nil {
				m.funcs = append(m.funcs, f)
			}
		case ".global", ".const", ".shared":
			d, err := p.varDecl(t.s)
			if err != nil {
				return nil, err
			}
			m.vars = append(m.vars, d)
		case ".file", ".section":
			for !p.eof() && p.peek().line == t.line {
				p.next()
			}
		case ";":
		default:
			return nil, fmt.Errorf("PTX line %d: unexpected %q at module level", t.line, t.s)
		}
	}
	if m.addrSize != 0 && m.addrSize != 64 {
		return nil, fmt.Errorf("PTX: .address_size %d not supported (64 only)", m.addrSize)
	}
	return m, nil
}

// varDecl parses the rest of a state-space declaration after its space.
func (p *parser) varDecl(space string) (*varDecl, error) {
	d := &varDecl{space: space, line: p.peek().line}
	for {
		t := p.peek()
		if t.kind != 'i' || !strings.HasPrefix(t.s, ".") {
			break
		}
		p.next()
		switch {
		case t.s == ".align":
			n, err := p.number()
			if err != nil {
				return nil, err
			}
			d.align = int(n)
		case t.s == ".ptr" || t.s == ".v2" || t.s == ".v4" || t.s == ".global" || t.s == ".shared" || t.s == ".const" || t.s == ".local":
			// pointer attributes of a .param (.ptr .global .align N) and
			// vector declarations carry no layout information we need
			if t.s == ".v2" || t.s == ".v4" {
				return nil, fmt.Errorf("PTX line %d: vector variable declarations are not supported", t.line)
			}
		default:
			if typeSize(t.s) == 0 {
				return nil, fmt.Errorf("PTX line %d: unknown attribute or type %q in declaration", t.line, t.s)
			}
			d.typ = t.s
		}
	}
	if d.typ == "" {
		return nil, p.errf("declaration without a type")
	}
	for {
		t := p.next()
		if t.kind != 'i' {
			return nil, fmt.Errorf("PTX line %d: expected a name, found %q", t.line, t.s)
		}
		n := declName{name: t.s}
		if p.accept("<") {
			c, err := p.number()
			if err != nil {
				return nil, err
			}
			n.count = int(c)
			if err := p.expect(">"); err != nil {
				return nil, err
			}
		}
		for p.accept("[") {
			if p.accept("]") {
				n.open = true
				continue
			}
			c, err := p.number()
			if err != nil {
				return nil, err
			}
			n.dims = append(n.dims, int(c))
			if err := p.expect("]"); err != nil {
				return nil, err
			}
		}
		d.names = append(d.names, n)
		if space == ".param" || !p.accept(",") {
			break
		}
	}
	if p.accept("=") {
		if p.accept("{") {
			for !p.accept("}") {
				if p.eof() {
					return nil, p.errf("unterminated initializer")
				}
				t := p.next()
				if t.s == "," || t.s == "{" || t.s == "}" {
					continue
				}
				if t.s == "-" {
					t = p.next()
					t.s = "-" + t.s
				}
				d.init = append(d.init, t.s)
			}
		} else {
			t := p.next()
			if t.s == "-" {
				t = p.next()
				t.s = "-" + t.s
			}
			d.init = append(d.init, t.s)
		}
	}
	if space != ".param" {
		if err := p.expect(";"); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (p *parser) paramList() ([]*varDecl, error) {
	var out []*varDecl
	if err := p.expect("("); err != nil {
		return nil, err
	}
	for !p.accept(")") {
		if p.eof() {
			return nil, p.errf("unterminated parameter list")
		}
		if err := p.expect(".param"); err != nil {
			return nil, err
		}
		d, err := p.varDecl(".param")
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		p.accept(",")
	}
	return out, nil
}

func (p *parser) function(entry bool, line int) (*funcAST, error) {
	f := &funcAST{entry: entry, line: line}
	if !entry && p.peek().s == "(" {
		// return parameters of a .func
		if _, err := p.paramList(); err != nil {
			return nil, err
		}
	}
	name := p.next()
	if name.kind != 'i' {
		return nil, fmt.Errorf("PTX line %d: expected a function name, found %q", name.line, name.s)
	}
	f.name = name.s
	if p.peek().s == "(" {
		ps, err := p.paramList()
		if err != nil {
			return nil, err
		}
		f.params = ps
	}
	// performance directives: .maxntid 128, 1, 1 / .reqntid / .minnctapersm N ...
	for {
		t := p.peek()
		if t.kind == 'i' && strings.HasPrefix(t.s, ".") && t.s != ".entry" && t.s != ".func" {
			p.next()
			var nums []int
			for p.peek().kind == 'n' || p.peek().s == "," {
				if n := p.next(); n.kind == 'n' {
					v, err := parseIntLit(n.s)
					if err != nil {
						return nil, fmt.Errorf("PTX line %d: %w", n.line, err)
					}
					nums = append(nums, int(v))
				}
			}
			switch t.s {
			case ".maxntid":
				f.maxntid = nums
			case ".reqntid":
				f.reqntid = nums
			}
			continue
		}
		break
	}
	if p.accept(";") {
		return nil, nil // a prototype
	}
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	body, err := p.body()
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", f.name, err)
	}
	f.body = body
	return f, nil
}

// body parses statements up to the "}" closing the function.
func (p *parser) body() ([]stmt, error) {
	var out []stmt
	depth := 0
	for {
		if p.eof() {
			return nil, p.errf("unterminated function body")
		}
		t := p.peek()
		switch {
		case t.s == "{" && t.kind == '{':
			p.next()
			depth++
			out = append(out, stmt{line: t.line, scope: 1})
		case t.s == "}" && t.kind == '}':
			p.next()
			if depth == 0 {
				return out, nil
			}
			depth--
			out = append(out, stmt{line: t.line, scope: -1})
		case t.s == ";":
			p.next()
		case t.s == ".reg" || t.s == ".shared" || t.s == ".local" || t.s == ".global" || t.s == ".const":
			p.next()
			d, err := p.varDecl(t.s)
			if err != nil {
				return nil, err
			}
			out = append(out, stmt{line: t.line, decl: d})
		case t.s == ".pragma" || t.s == ".loc" || t.s == ".file":
			for !p.eof() && p.peek().s != ";" && p.peek().line == t.line {
				p.next()
			}
			p.accept(";")
		case t.kind == 'i' && p.i+1 < len(p.t) && p.t[p.i+1].s == ":" && !strings.HasPrefix(t.s, "%"):
			p.i += 2
			out = append(out, stmt{line: t.line, label: t.s})
		default:
			s, err := p.instruction()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
}

func (p *parser) instruction() (stmt, error) {
	s := stmt{line: p.peek().line}
	if p.accept("@") {
		s.guardNeg = p.accept("!")
		g := p.next()
		if g.kind != 'i' {
			return s, fmt.Errorf("PTX line %d: bad guard predicate %q", g.line, g.s)
		}
		s.guard = g.s
	}
	op := p.next()
	if op.kind != 'i' || strings.HasPrefix(op.s, ".") || strings.HasPrefix(op.s, "%") {
		return s, fmt.Errorf("PTX line %d: expected an instruction, found %q", op.line, op.s)
	}
	s.op = op.s
	for !p.accept(";") {
		if p.eof() {
			return s, p.errf("instruction %s not terminated by ';'", s.op)
		}
		o, err := p.operand()
		if err != nil {
			return s, err
		}
		s.ops = append(s.ops, o)
		if !p.accept(",") {
			if err := p.expect(";"); err != nil {
				return s, err
			}
			break
		}
	}
	return s, nil
}

func (p *parser) operand() (operandAST, error) {
	t := p.peek()
	switch {
	case t.s == "[":
		p.next()
		o := operandAST{kind: 'a'}
		if p.peek().kind == 'n' {
			n, err := p.number()
			if err != nil {
				return o, err
			}
			o.off = n
		} else {
			b := p.next()
			if b.kind != 'i' {
				return o, fmt.Errorf("PTX line %d: bad address %q", b.line, b.s)
			}
			o.name = b.s
			for p.peek().s == "+" || p.peek().s == "-" {
				sign := int64(1)
				if p.next().s == "-" {
					sign = -1
				}
				n, err := p.number()
				if err != nil {
					return o, err
				}
				o.off += sign * n
			}
		}
		return o, p.expect("]")
	case t.s == "{":
		p.next()
		o := operandAST{kind: 'v'}
		for {
			e, err := p.operand()
			if err != nil {
				return o, err
			}
			o.elems = append(o.elems, e)
			if !p.accept(",") {
				break
			}
		}
		return o, p.expect("}")
	case t.s == "!":
		p.next()
		o, err := p.operand()
		o.not = true
		return o, err
	case t.s == "-" || t.kind == 'n':
		neg := p.accept("-")
		n := p.next()
		if n.kind != 'n' {
			return operandAST{}, fmt.Errorf("PTX line %d: bad literal %q", n.line, n.s)
		}
		s := n.s
		if neg {
			s = "-" + s
		}
		return operandAST{kind: 'n', num: s}, nil
	case t.kind == 'i':
		p.next()
		if t.s == "_" {
			return operandAST{kind: '_'}, nil
		}
		o := operandAST{kind: 'r', name: t.s}
		if p.accept("|") {
			q := p.next()
			o.pair = q.s
		}
		return o, nil
	}
	return operandAST{}, fmt.Errorf("PTX line %d: unexpected %q in operand", t.line, t.s)
}

// typeSize returns the byte size of a PTX fundamental type, 0 if unknown.
func typeSize(t string) int {
	switch t {
	case ".pred":
		return 1
	case ".b8", ".u8", ".s8":
		return 1
	case ".b16", ".u16", ".s16", ".f16", ".bf16":
		return 2
	case ".b32", ".u32", ".s32", ".f32", ".f16x2", ".bf16x2", ".tf32":
		return 4
	case ".b64", ".u64", ".s64", ".f64":
		return 8
	}
	return 0
}
