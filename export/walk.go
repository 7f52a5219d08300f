package export

import (
	"fmt"
	"strconv"

	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/models"
)

// walker emits the ONNX ops of a detector's modules, mirroring the engine's
// inference-mode forward pass module by module. Names follow the modules'
// parameter paths ("backbone.blocks.3.conv1"), so a node can be traced back
// to the checkpoint tensors it came from.
type walker struct {
	g *graph
	// size is the input side, at which imported graphs are traced.
	size int
}

// head outputs of every pyramid level, as tensor names.
type headOutputs struct {
	features, cls, reg, ctr []string
}

// detector emits the whole network on the input tensor x (for the
// two-stage family its first stage, the RPN). The head's output
// convolutions write to the contract names cls_logits_<i>, box_reg_<i> and
// centerness_<i>, the pyramid's levels to feature_<i>.
func (w *walker) detector(d *models.Detector, x string) (headOutputs, error) {
	cs, err := w.backbone("backbone", d.Backbone, x)
	if err != nil {
		return headOutputs{}, err
	}
	feats, err := w.fpn("fpn", d.FPN, cs, len(d.Config.FPN.Levels))
	if err != nil {
		return headOutputs{}, err
	}
	out := headOutputs{features: feats}
	if d.RPN != nil {
		err = w.rpn("rpn", d.RPN, feats, &out)
	} else {
		err = w.head("head", d.Head, feats, &out)
	}
	if err != nil {
		return headOutputs{}, err
	}
	return out, nil
}

// convBNAct emits conv → folded batch norm → activation; out names the
// result ("" for a name derived from prefix).
func (w *walker) convBNAct(prefix string, conv *nn.Conv2d, bn *nn.BatchNorm2d, act nn.Activation, x, out string) (string, error) {
	weight, bias, err := foldBN(conv, bn)
	if err != nil {
		return "", fmt.Errorf("export: %s: %w", prefix, err)
	}
	w.g.folded++
	base := prefix
	if act != nn.ActNone && act != "" {
		base = prefix + ".conv"
	}
	y := w.g.conv(base, x, weight, conv.Weight.Shape(), bias, conv.Options)
	if act == nn.ActNone || act == "" {
		return w.rename(y, out), nil
	}
	y, err = w.g.act(prefix, y, act)
	if err != nil {
		return "", fmt.Errorf("export: %s: %w", prefix, err)
	}
	return w.rename(y, out), nil
}

func (w *walker) block3(prefix string, b *nn.ConvBNAct, x string) (string, error) {
	if b == nil || b.Conv == nil || b.BN == nil {
		return "", fmt.Errorf("export: %s: conv-bn-act block is incomplete", prefix)
	}
	return w.convBNAct(prefix, b.Conv, b.BN, b.Act, x, "")
}

// rename gives the last emitted node's output the contract name out (when
// set), so outputs keep their stable names whatever ops produced them.
func (w *walker) rename(y, out string) string {
	if out == "" {
		return y
	}
	last := w.g.nodes[len(w.g.nodes)-1]
	if last.Output[0] != y {
		panic(&BuildError{Step: "rename", Detail: fmt.Sprintf("%q to %q, but the last node writes %q", y, out, last.Output[0])})
	}
	delete(w.g.used, y)
	w.g.reserve(out)
	last.Output[0] = out
	last.Name = out
	return out
}

func (w *walker) backbone(prefix string, b models.Backbone, x string) ([3]string, error) {
	if gb, ok := b.(*models.GraphBackbone); ok {
		outs, err := w.graph(prefix, gb.Graph, []string{x}, w.size, nil)
		if err != nil {
			return [3]string{}, err
		}
		if len(outs) != 3 {
			return [3]string{}, fmt.Errorf("export: %s: the imported backbone gives %d outputs, want C3, C4, C5", prefix, len(outs))
		}
		return [3]string(outs), nil
	}
	s, ok := b.(*models.Stages)
	if !ok {
		return [3]string{}, fmt.Errorf("export: backbone type %T is not supported (want *models.Stages)", b)
	}
	var out [3]string
	var err error
	for i, c := range s.Stem {
		if x, err = w.block3(prefix+".stem."+strconv.Itoa(i), c, x); err != nil {
			return out, err
		}
	}
	found := 0
	for i, blk := range s.Blocks {
		p := prefix + ".blocks." + strconv.Itoa(i)
		switch blk := blk.(type) {
		case *models.BasicBlock:
			x, err = w.basicBlock(p, blk, x)
		case *models.InvertedResidual:
			x, err = w.invertedResidual(p, blk, x)
		default:
			err = fmt.Errorf("export: %s: block type %T is not supported (want *models.BasicBlock or *models.InvertedResidual)", p, blk)
		}
		if err != nil {
			return out, err
		}
		for k, t := range s.Taps {
			if t == i {
				out[k] = x
				found++
			}
		}
	}
	if found != 3 {
		return out, fmt.Errorf("export: %s: taps %v select %d of the C3, C4, C5 outputs among %d blocks, want 3", prefix, s.Taps, found, len(s.Blocks))
	}
	return out, nil
}

func (w *walker) basicBlock(prefix string, b *models.BasicBlock, x string) (string, error) {
	y, err := w.block3(prefix+".conv1", b.Conv1, x)
	if err != nil {
		return "", err
	}
	if y, err = w.block3(prefix+".conv2", b.Conv2, y); err != nil {
		return "", err
	}
	short := x
	if b.Shortcut != nil {
		if short, err = w.block3(prefix+".shortcut", b.Shortcut, x); err != nil {
			return "", err
		}
	}
	sum := w.g.emit("Add", prefix+".add", []string{y, short})
	out, err := w.g.act(prefix, sum, b.Act)
	if err != nil {
		return "", fmt.Errorf("export: %s: %w", prefix, err)
	}
	return out, nil
}

func (w *walker) invertedResidual(prefix string, b *models.InvertedResidual, x string) (string, error) {
	y := x
	var err error
	if b.Expand != nil {
		if y, err = w.block3(prefix+".expand", b.Expand, y); err != nil {
			return "", err
		}
	}
	if y, err = w.block3(prefix+".dw", b.Depthwise, y); err != nil {
		return "", err
	}
	if y, err = w.block3(prefix+".project", b.Project, y); err != nil {
		return "", err
	}
	if b.Residual {
		return w.g.emit("Add", prefix+".add", []string{y, x}), nil
	}
	return y, nil
}

func (w *walker) sepConv(prefix string, s *models.SepConv, x, out string) (string, error) {
	if s.Full != nil {
		return w.convBNAct(prefix+".conv", s.Full.Conv, s.Full.BN, s.Full.Act, x, out)
	}
	if s.Depthwise == nil || s.Pointwise == nil {
		return "", fmt.Errorf("export: %s: separable convolution needs both depthwise and pointwise layers", prefix)
	}
	y, err := w.block3(prefix+".dw", s.Depthwise, x)
	if err != nil {
		return "", err
	}
	return w.convBNAct(prefix+".pw", s.Pointwise.Conv, s.Pointwise.BN, s.Pointwise.Act, y, out)
}

// fpn emits the pyramid. Upsampling factors are exact: every level of a
// valid config is half its finer neighbour (input sizes are multiples of 32).
func (w *walker) fpn(prefix string, f *models.FPN, cs [3]string, levels int) ([]string, error) {
	if f.Neck != nil {
		return w.neck(prefix, f, cs, levels)
	}
	if len(f.Lateral) != 3 || len(f.Output) != 3 || 3+len(f.Extra) != levels {
		return nil, fmt.Errorf("export: %s: %d laterals, %d output blocks and %d extra levels for %d pyramid levels, want 3, 3 and %d",
			prefix, len(f.Lateral), len(f.Output), len(f.Extra), levels, levels-3)
	}
	lat := make([]string, 3)
	var err error
	for i := range cs {
		if lat[i], err = w.block3(prefix+".lateral."+strconv.Itoa(i), f.Lateral[i], cs[i]); err != nil {
			return nil, err
		}
	}
	for i := 1; i >= 0; i-- {
		up := w.g.upsample(prefix+".up."+strconv.Itoa(i), lat[i+1], 2, 2)
		lat[i] = w.g.emit("Add", prefix+".topdown."+strconv.Itoa(i), []string{lat[i], up})
	}
	out := make([]string, 0, levels)
	for i := range lat {
		y, err := w.sepConv(prefix+".output."+strconv.Itoa(i), f.Output[i], lat[i], "feature_"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		out = append(out, y)
	}
	return w.extra(prefix, f, out)
}

// neck emits an imported neck, names its outputs feature_0…2 and adds the
// extra levels.
func (w *walker) neck(prefix string, f *models.FPN, cs [3]string, levels int) ([]string, error) {
	if 3+len(f.Extra) != levels {
		return nil, fmt.Errorf("export: %s: %d extra levels for %d pyramid levels, want %d", prefix, len(f.Extra), levels, levels-3)
	}
	out, err := w.graph(prefix+".neck", f.Neck, cs[:], w.size, []string{"feature_0", "feature_1", "feature_2"})
	if err != nil {
		return nil, err
	}
	return w.extra(prefix, f, out)
}

// extra emits P6 and P7 from P5.
func (w *walker) extra(prefix string, f *models.FPN, out []string) ([]string, error) {
	x := out[2]
	var err error
	for i, e := range f.Extra {
		p := prefix + ".extra." + strconv.Itoa(i)
		if i > 0 {
			x = w.g.emit("Relu", p+".relu_in", []string{x})
		}
		if e == nil || e.Conv == nil || e.BN == nil {
			return nil, fmt.Errorf("export: %s: conv-bn-act block is incomplete", p)
		}
		if x, err = w.convBNAct(p, e.Conv, e.BN, e.Act, x, "feature_"+strconv.Itoa(3+i)); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// tower emits one head tower on one level: shared convolution weights with
// that level's batch norms folded in.
func (w *walker) tower(prefix string, layers []*models.TowerLayer, level int, x string) (string, error) {
	var err error
	for i, t := range layers {
		p := prefix + "." + strconv.Itoa(i)
		if len(t.Norm) <= level || (t.Depthwise != nil && len(t.DepthwiseNorm) <= level) {
			return "", fmt.Errorf("export: %s: %d batch norms for pyramid level %d", p, len(t.Norm), level)
		}
		if t.Depthwise != nil {
			if x, err = w.convBNAct(p+".dw", t.Depthwise, t.DepthwiseNorm[level], t.Act, x, ""); err != nil {
				return "", err
			}
		}
		if x, err = w.convBNAct(p+".conv", t.Conv, t.Norm[level], t.Act, x, ""); err != nil {
			return "", err
		}
	}
	return x, nil
}

func (w *walker) head(prefix string, h *models.Head, feats []string, out *headOutputs) error {
	if len(h.ClsTower) != len(h.RegTower) {
		return fmt.Errorf("export: %s: %d classification and %d regression tower layers, want the same", prefix, len(h.ClsTower), len(h.RegTower))
	}
	for l, f := range feats {
		lv := strconv.Itoa(l)
		c, err := w.tower(prefix+".l"+lv+".cls_tower", h.ClsTower, l, f)
		if err != nil {
			return err
		}
		r, err := w.tower(prefix+".l"+lv+".reg_tower", h.RegTower, l, f)
		if err != nil {
			return err
		}
		out.cls = append(out.cls, w.outConv(h.ClsOut, c, "cls_logits_"+lv))
		out.reg = append(out.reg, w.outConv(h.RegOut, r, "box_reg_"+lv))
		if h.Centerness != nil {
			out.ctr = append(out.ctr, w.outConv(h.Centerness, r, "centerness_"+lv))
		}
	}
	return nil
}

// outConv emits a head output convolution (weights and bias as trained, no
// batch norm) writing to a contract name.
func (w *walker) outConv(c *nn.Conv2d, x, name string) string {
	return w.rename(w.plainConv(name, c, x), name)
}
