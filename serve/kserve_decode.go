package serve

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/gidedge/gidedge/infer"
)

// inferRequest is a decoded KServe v2 infer request body.
type inferRequest struct {
	ID      string
	Inputs  []infer.RawTensor // FP32, Data a []float32 of exactly the shape's size
	Outputs []string          // requested output names; empty means all
}

// requestDecoder streams one infer request body into tensors. Each input's
// values go straight into a []float32 allocated once its shape has been
// checked against the model's input, so memory is bounded by the declared
// shapes, never by the JSON text; more values than the shape holds are
// refused as they arrive. maxValues bounds the values of all inputs
// together (a body of B bytes carries at most B/2 numbers).
type requestDecoder struct {
	s         *jsonScanner
	ctx       context.Context
	model     []infer.TensorInfo
	maxValues int
	read      int // values read so far, for cancellation checks
}

// maxNameLen bounds tensor names and request ids.
const maxNameLen = 4096

// maxRank bounds a tensor's declared rank.
const maxRank = 8

// decodeInferRequest reads a KServe v2 infer request from r for a model
// with the given inputs. Errors are the client's (malformed JSON, a shape
// the model cannot take) unless they wrap a read error or ctx's error.
func decodeInferRequest(ctx context.Context, r io.Reader, model []infer.TensorInfo, maxValues int) (*inferRequest, error) {
	d := &requestDecoder{s: newJSONScanner(r, 64<<10), ctx: ctx, model: model, maxValues: maxValues}
	req, err := d.request()
	if err != nil {
		return nil, err
	}
	return req, d.s.atEnd()
}

// members calls member for each key of a JSON object, refusing a key seen
// twice.
func (d *requestDecoder) members(what string, member func(key string) error) error {
	if err := d.s.expect('{'); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if c, err := d.s.peek(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if c == '}' {
		d.s.pos++
		return nil
	}
	seen := map[string]bool{}
	for {
		key, err := d.s.readString(maxNameLen)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if seen[key] {
			return fmt.Errorf("%s: field %q appears twice", what, key)
		}
		seen[key] = true
		if err := d.s.expect(':'); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := member(key); err != nil {
			return err
		}
		done, err := d.s.next('}')
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
	}
}

// elements calls element for each item of a JSON array.
func (d *requestDecoder) elements(what string, element func(i int) error) error {
	if err := d.s.expect('['); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if c, err := d.s.peek(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if c == ']' {
		d.s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := element(i); err != nil {
			return err
		}
		done, err := d.s.next(']')
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
	}
}

func (d *requestDecoder) request() (*inferRequest, error) {
	req := &inferRequest{}
	err := d.members("request", func(key string) error {
		var err error
		switch key {
		case "id":
			req.ID, err = d.s.readString(maxNameLen)
		case "parameters":
			err = d.s.skipValue(0)
		case "inputs":
			err = d.elements("inputs", func(i int) error {
				if i >= len(d.model) {
					return fmt.Errorf("inputs: more than the model's %d input(s) (%s)", len(d.model), infer.TensorList(d.model))
				}
				t, err := d.tensor(i)
				if err != nil {
					return err
				}
				if slices.ContainsFunc(req.Inputs, func(o infer.RawTensor) bool { return o.Name == t.Name }) {
					return fmt.Errorf("inputs[%d]: input %q given twice", i, t.Name)
				}
				req.Inputs = append(req.Inputs, t)
				return nil
			})
		case "outputs":
			err = d.elements("outputs", func(i int) error {
				if i >= 1024 {
					return fmt.Errorf("outputs: more than 1024 entries")
				}
				var name string
				err := d.members(fmt.Sprintf("outputs[%d]", i), func(key string) error {
					var err error
					switch key {
					case "name":
						name, err = d.s.readString(maxNameLen)
					case "parameters":
						err = d.s.skipValue(0)
					default:
						err = fmt.Errorf("outputs[%d]: unknown field %q (want name, parameters)", i, key)
					}
					return err
				})
				if err == nil && name == "" {
					err = fmt.Errorf("outputs[%d]: no name", i)
				}
				req.Outputs = append(req.Outputs, name)
				return err
			})
		default:
			err = fmt.Errorf("request: unknown field %q (want id, parameters, inputs, outputs)", key)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(req.Inputs) == 0 {
		return nil, fmt.Errorf("request has no inputs; the model takes %s", infer.TensorList(d.model))
	}
	return req, nil
}

// tensor reads inputs[i]. Data may come before shape, name or datatype (JSON
// objects are unordered); it is then read against the model input's shape
// and checked against the fields that follow.
func (d *requestDecoder) tensor(i int) (infer.RawTensor, error) {
	var (
		t                          infer.RawTensor
		haveName, haveShape, haveT bool
		data                       []float32
		readWith                   []int64 // the shape data was read with
	)
	where := func() string {
		if haveName {
			return fmt.Sprintf("inputs[%d] (%q)", i, t.Name)
		}
		return fmt.Sprintf("inputs[%d]", i)
	}
	err := d.members(fmt.Sprintf("inputs[%d]", i), func(key string) error {
		switch key {
		case "name":
			name, err := d.s.readString(maxNameLen)
			t.Name, haveName = name, true
			if err != nil {
				return fmt.Errorf("%s: name: %w", where(), err)
			}
			if _, ok := d.modelInput(name); !ok {
				return fmt.Errorf("%s: not a model input (model inputs: %s)", where(), infer.TensorList(d.model))
			}
			if readWith != nil && !haveShape {
				if info, _ := d.modelInput(name); !slices.Equal(info.Shape, readWith) {
					return fmt.Errorf("%s: data came before shape and was read as %v, the shape of another input", where(), readWith)
				}
			}
		case "shape":
			shape, err := d.shape()
			if err != nil {
				return fmt.Errorf("%s: shape: %w", where(), err)
			}
			if readWith != nil && !slices.Equal(shape, readWith) {
				return fmt.Errorf("%s: shape %v follows data that was read as %v (the model's input shape); put shape before data", where(), shape, readWith)
			}
			t.Shape, haveShape = shape, true
		case "datatype":
			dt, err := d.s.readString(64)
			if err != nil {
				return fmt.Errorf("%s: datatype: %w", where(), err)
			}
			if dt != "FP32" {
				return fmt.Errorf("%s: datatype %q, want FP32", where(), dt)
			}
			t.Datatype, haveT = dt, true
		case "parameters":
			return d.s.skipValue(0)
		case "data":
			shape := t.Shape
			info, ok := d.inputFor(t.Name, haveName)
			if !ok {
				return fmt.Errorf("%s: data comes before name in a request for a model with %d inputs; put name first", where(), len(d.model))
			}
			if !haveShape {
				shape = info.Shape
				if slices.ContainsFunc(shape, func(v int64) bool { return v <= 0 }) {
					return fmt.Errorf("%s: data comes before shape and the model input %q has dynamic dimensions %v; put shape first", where(), info.Name, info.Shape)
				}
				readWith = slices.Clone(shape)
			}
			n, err := d.count(info, shape)
			if err != nil {
				return fmt.Errorf("%s: %w", where(), err)
			}
			data = make([]float32, n)
			if err := d.values(shape, data); err != nil {
				return fmt.Errorf("%s: data: %w", where(), err)
			}
		default:
			return fmt.Errorf("%s: unknown field %q (want name, shape, datatype, parameters, data)", where(), key)
		}
		return nil
	})
	if err != nil {
		return t, err
	}
	switch {
	case !haveName:
		return t, fmt.Errorf("%s: no name", where())
	case !haveShape:
		return t, fmt.Errorf("%s: no shape", where())
	case !haveT:
		return t, fmt.Errorf("%s: no datatype (want FP32)", where())
	case data == nil:
		return t, fmt.Errorf("%s: no data", where())
	}
	t.Data = data
	return t, nil
}

// modelInput finds a model input by name.
func (d *requestDecoder) modelInput(name string) (infer.TensorInfo, bool) {
	for _, in := range d.model {
		if in.Name == name {
			return in, true
		}
	}
	return infer.TensorInfo{}, false
}

// inputFor is the model input data is read for: the named one, or the only
// one when the name has not been seen yet.
func (d *requestDecoder) inputFor(name string, haveName bool) (infer.TensorInfo, bool) {
	if haveName {
		return d.modelInput(name)
	}
	if len(d.model) == 1 {
		return d.model[0], true
	}
	return infer.TensorInfo{}, false
}

// count checks shape against the model input and the value budget and
// returns its number of values.
func (d *requestDecoder) count(info infer.TensorInfo, shape []int64) (int, error) {
	if len(shape) != len(info.Shape) {
		return 0, fmt.Errorf("shape %v, the model input %q is %v", shape, info.Name, info.Shape)
	}
	total := int64(1)
	for k, v := range shape {
		if v <= 0 || (info.Shape[k] > 0 && v != info.Shape[k]) {
			return 0, fmt.Errorf("shape %v, the model input %q is %v", shape, info.Name, info.Shape)
		}
		if total > int64(d.maxValues)/v {
			return 0, fmt.Errorf("shape %v holds more values than a request body of the allowed size can carry (%d)", shape, d.maxValues)
		}
		total *= v
	}
	if total > int64(d.maxValues) {
		return 0, fmt.Errorf("shape %v holds %d values, more than the %d left for this request", shape, total, d.maxValues)
	}
	d.maxValues -= int(total)
	return int(total), nil
}

// shape reads an array of positive integers.
func (d *requestDecoder) shape() ([]int64, error) {
	var shape []int64
	err := d.elements("shape", func(k int) error {
		if k >= maxRank {
			return fmt.Errorf("more than %d dimensions", maxRank)
		}
		tok, err := d.s.readNumber()
		if err != nil {
			return err
		}
		v, err := strconv.ParseInt(string(tok), 10, 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("dimension %d is %s, want a positive integer", k, tok)
		}
		shape = append(shape, v)
		return nil
	})
	if err == nil && len(shape) == 0 {
		err = fmt.Errorf("no dimensions")
	}
	return shape, err
}

// values reads data into out: a flat array of len(out) numbers, or arrays
// nested exactly as shape says, in row-major order either way.
func (d *requestDecoder) values(shape []int64, out []float32) error {
	if err := d.s.expect('['); err != nil {
		return err
	}
	c, err := d.s.peek()
	if err != nil {
		return err
	}
	pos := 0
	if c == '[' {
		if err := d.level(shape, 0, out, &pos); err != nil {
			return err
		}
	} else if err := d.level([]int64{int64(len(out))}, 0, out, &pos); err != nil {
		return err
	}
	return nil
}

// level reads the rest of an array at depth level of shape ('[' already
// consumed), numbers at the last level, arrays above it.
func (d *requestDecoder) level(shape []int64, level int, out []float32, pos *int) error {
	want := shape[level]
	if c, err := d.s.peek(); err != nil {
		return err
	} else if c == ']' {
		d.s.pos++
		if want != 0 {
			return fmt.Errorf("dimension %d has 0 entries, the shape %v wants %d", level, shape, want)
		}
		return nil
	}
	for n := int64(1); ; n++ {
		if n > want {
			if level == len(shape)-1 && len(shape) == 1 {
				return fmt.Errorf("more than the %d values the shape holds", want)
			}
			return fmt.Errorf("dimension %d has more than %d entries (shape %v)", level, want, shape)
		}
		if level == len(shape)-1 {
			if err := d.value(out, pos); err != nil {
				return err
			}
		} else {
			if err := d.s.expect('['); err != nil {
				return fmt.Errorf("dimension %d: %w (arrays nest as deep as the shape %v, or data is one flat array)", level, err, shape)
			}
			if err := d.level(shape, level+1, out, pos); err != nil {
				return err
			}
		}
		done, err := d.s.next(']')
		if err != nil {
			return err
		}
		if done {
			if n != want {
				if len(shape) == 1 {
					return fmt.Errorf("%d values, the shape holds %d", n, want)
				}
				return fmt.Errorf("dimension %d has %d entries, the shape %v wants %d", level, n, shape, want)
			}
			return nil
		}
	}
}

// value reads one number into out[*pos] as the nearest float32.
func (d *requestDecoder) value(out []float32, pos *int) error {
	tok, err := d.s.readNumber()
	if err != nil {
		return err
	}
	f, err := strconv.ParseFloat(string(tok), 32)
	if err != nil {
		return fmt.Errorf("value %d (%s) is beyond the float32 range", *pos, tok)
	}
	out[*pos] = float32(f)
	*pos++
	if d.read++; d.read%16384 == 0 {
		if err := d.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}
