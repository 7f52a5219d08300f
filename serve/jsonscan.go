package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// jsonScanner reads JSON tokens from a stream through a fixed buffer, so
// a request body is parsed without ever being held whole: the infer route
// streams tensor data straight into float32 slices with it. It checks the
// JSON grammar of what it reads; errors give the byte offset.
type jsonScanner struct {
	r    io.Reader
	buf  []byte
	pos  int   // next unread byte in buf
	n    int   // bytes of buf filled
	base int64 // stream offset of buf[0]
	err  error // sticky read error; io.EOF at the end of the stream
	tok  []byte
}

func newJSONScanner(r io.Reader, size int) *jsonScanner {
	return &jsonScanner{r: r, buf: make([]byte, size), tok: make([]byte, 0, 64)}
}

// offset is the stream position of the next unread byte.
func (s *jsonScanner) offset() int64 { return s.base + int64(s.pos) }

// syntax is a malformed-JSON error at the current position.
func (s *jsonScanner) syntax(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at byte %d: %s", s.offset(), fmt.Sprintf(format, args...))
}

// fill reads more bytes once the buffer is used up; false at the end of
// the stream or on a read error (kept in s.err).
func (s *jsonScanner) fill() bool {
	if s.pos < s.n {
		return true
	}
	if s.err != nil {
		return false
	}
	s.base += int64(s.n)
	s.pos, s.n = 0, 0
	for s.n == 0 && s.err == nil {
		s.n, s.err = s.r.Read(s.buf)
	}
	return s.n > 0
}

// readErr is the error for a stream that ended or failed mid-value.
func (s *jsonScanner) readErr() error {
	if s.err == nil || errors.Is(s.err, io.EOF) {
		return s.syntax("unexpected end of the body")
	}
	return s.err
}

// peek skips white space and returns the next byte without consuming it.
func (s *jsonScanner) peek() (byte, error) {
	for {
		if !s.fill() {
			return 0, s.readErr()
		}
		c := s.buf[s.pos]
		switch c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c, nil
		}
	}
}

// expect consumes the next non-space byte, which must be c.
func (s *jsonScanner) expect(c byte) error {
	got, err := s.peek()
	if err != nil {
		return err
	}
	if got != c {
		return s.syntax("found %q, want %q", got, c)
	}
	s.pos++
	return nil
}

// next consumes ',' or the closing byte of a list; done is true at the
// closing byte.
func (s *jsonScanner) next(closing byte) (done bool, err error) {
	c, err := s.peek()
	if err != nil {
		return false, err
	}
	switch c {
	case ',':
		s.pos++
		return false, nil
	case closing:
		s.pos++
		return true, nil
	}
	return false, s.syntax("found %q, want ',' or %q", c, closing)
}

// atEnd reports an error unless only white space remains.
func (s *jsonScanner) atEnd() error {
	c, err := s.peek()
	if err == nil {
		return s.syntax("found %q after the end of the request object", c)
	}
	if s.err != nil && !errors.Is(s.err, io.EOF) {
		return s.err
	}
	return nil
}

// rawString reads a string token, quotes included, into s.tok; a string
// longer than limit bytes is an error.
func (s *jsonScanner) rawString(limit int) error {
	if err := s.expect('"'); err != nil {
		return err
	}
	s.tok = append(s.tok[:0], '"')
	hex := 0 // hex digits still expected after \u
	escaped := false
	for {
		if !s.fill() {
			return s.readErr()
		}
		c := s.buf[s.pos]
		s.pos++
		if limit > 0 && len(s.tok) > limit+1 {
			return s.syntax("string longer than %d bytes", limit)
		}
		if limit > 0 {
			s.tok = append(s.tok, c)
		}
		switch {
		case hex > 0:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return s.syntax("found %q in a \\u escape, want a hex digit", c)
			}
			hex--
		case escaped:
			escaped = false
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				hex = 4
			default:
				return s.syntax("invalid escape \\%c in a string", c)
			}
		case c == '\\':
			escaped = true
		case c == '"':
			return nil
		case c < 0x20:
			return s.syntax("control character %#x in a string", c)
		}
	}
}

// readString reads a string of at most limit bytes (escapes undone by
// encoding/json, so the rules are exactly JSON's).
func (s *jsonScanner) readString(limit int) (string, error) {
	start := s.offset()
	if err := s.rawString(limit); err != nil {
		return "", err
	}
	var v string
	if err := json.Unmarshal(s.tok, &v); err != nil {
		return "", fmt.Errorf("invalid JSON string at byte %d: %v", start, err)
	}
	return v, nil
}

// maxNumberLen bounds a number token; longer ones are refused.
const maxNumberLen = 256

// readNumber reads a number token into s.tok and checks JSON's grammar
// (strconv would also take "Inf", hex and a leading '+').
func (s *jsonScanner) readNumber() ([]byte, error) {
	if _, err := s.peek(); err != nil {
		return nil, err
	}
	start := s.offset()
	s.tok = s.tok[:0]
	for s.fill() {
		c := s.buf[s.pos]
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			break
		}
		if len(s.tok) == maxNumberLen {
			return nil, fmt.Errorf("invalid JSON at byte %d: number longer than %d bytes", start, maxNumberLen)
		}
		s.tok = append(s.tok, c)
		s.pos++
	}
	if s.err != nil && !errors.Is(s.err, io.EOF) {
		return nil, s.err
	}
	if !validNumber(s.tok) {
		if len(s.tok) == 0 {
			c, _ := s.peek()
			return nil, fmt.Errorf("invalid JSON at byte %d: found %q, want a number", start, c)
		}
		return nil, fmt.Errorf("invalid JSON at byte %d: %q is not a number", start, s.tok)
	}
	return s.tok, nil
}

// validNumber is JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

// maxSkipDepth bounds the nesting of values the decoder skips.
const maxSkipDepth = 32

// skipValue consumes one JSON value of any kind without keeping it
// (strings are checked, not stored).
func (s *jsonScanner) skipValue(depth int) error {
	if depth > maxSkipDepth {
		return s.syntax("nested deeper than %d levels", maxSkipDepth)
	}
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch {
	case c == '{':
		s.pos++
		if c, err := s.peek(); err != nil {
			return err
		} else if c == '}' {
			s.pos++
			return nil
		}
		for {
			if err := s.rawString(0); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			if done, err := s.next('}'); err != nil || done {
				return err
			}
		}
	case c == '[':
		s.pos++
		if c, err := s.peek(); err != nil {
			return err
		} else if c == ']' {
			s.pos++
			return nil
		}
		for {
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			if done, err := s.next(']'); err != nil || done {
				return err
			}
		}
	case c == '"':
		return s.rawString(0)
	case c == 't' || c == 'f' || c == 'n':
		return s.literal()
	default:
		_, err := s.readNumber()
		return err
	}
}

// literal consumes true, false or null.
func (s *jsonScanner) literal() error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	want := map[byte]string{'t': "true", 'f': "false", 'n': "null"}[c]
	for i := 0; i < len(want); i++ {
		if !s.fill() {
			return s.readErr()
		}
		if s.buf[s.pos] != want[i] {
			return s.syntax("found %q, want %q", s.buf[s.pos], want)
		}
		s.pos++
	}
	return nil
}
