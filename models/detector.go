package models

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

// Outputs are a detector's raw results for a batch: for the two-stage
// family those of its first stage, the RPN (its second stage runs on
// proposals: in Loss for training, in Postprocess for inference).
type Outputs struct {
	// Features are the FPN levels, finest first: [N, C, Hl, Wl].
	Features []*engine.Tensor
	// ClsLogits per level: [N, A·K, Hl, Wl], channel a·K + k; the RPN's
	// objectness [N, A, Hl, Wl] (K = 1) for the two-stage family.
	ClsLogits []*engine.Tensor
	// BoxRegs per level: [N, A·4, Hl, Wl], channel a·4 + j. RetinaNet and
	// the RPN: (dx, dy, dw, dh) deltas; FCOS: log of (l, t, r, b) distances
	// in strides.
	BoxRegs []*engine.Tensor
	// Centerness per level (FCOS only): [N, 1, Hl, Wl] logits.
	Centerness []*engine.Tensor
	// InputH and InputW are the size of the images that produced these.
	InputH, InputW int
}

// Detector is a RetinaNet, FCOS or Faster R-CNN detector built from a
// Config. It is an nn.Module: parameters are named "backbone.…", "fpn.…"
// and "head.…" (one-stage) or "rpn.…" and "roi_head.…" (two-stage).
type Detector struct {
	Config   Config
	Backbone Backbone
	FPN      *FPN
	// Head is the one-stage families' dense head (nil for two-stage).
	Head *Head
	// RPN and BoxHead are the two-stage family's stages (nil otherwise).
	RPN     *RPNHead
	BoxHead *BoxHead

	// Frozen runs the backbone, and an imported neck, as fixed feature
	// extractors: batch norms on running statistics even in training
	// (the trainer also stops their gradients while they are frozen).
	Frozen bool

	mu     sync.Mutex
	priors map[[2]int]*Priors
}

var _ nn.Module = (*Detector)(nil)

// New builds a detector with freshly initialised weights drawn from seed.
// cfg.NumClasses must be set (see Config.WithClasses).
func New(cfg Config, seed uint64) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("models: config %q: %w", cfg.Name, err)
	}
	if cfg.NumClasses <= 0 {
		return nil, fmt.Errorf("models: config %q: num_classes is %d, want ≥ 1 (set it from the dataset with WithClasses)", cfg.Name, cfg.NumClasses)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	bb, err := newBackbone(rng, cfg.Backbone)
	if err != nil {
		return nil, err
	}
	d := &Detector{Config: cfg, Backbone: bb, priors: map[[2]int]*Priors{}}
	d.FPN = newFPN(rng, bb.OutChannels(), cfg.FPN, cfg.Neck)
	if cfg.TwoStage() {
		d.RPN = newRPNHead(rng, cfg)
		d.BoxHead = newBoxHead(rng, cfg)
	} else {
		d.Head = newHead(rng, cfg)
	}
	return d, nil
}

// Visit implements nn.Module.
func (d *Detector) Visit(prefix string, v nn.Visitor) {
	d.Backbone.Visit(nn.Join(prefix, "backbone"), v)
	d.FPN.Visit(nn.Join(prefix, "fpn"), v)
	if d.Head != nil {
		d.Head.Visit(nn.Join(prefix, "head"), v)
	}
	if d.RPN != nil {
		d.RPN.Visit(nn.Join(prefix, "rpn"), v)
		d.BoxHead.Visit(nn.Join(prefix, "roi_head"), v)
	}
}

// Forward runs the network on x [N, 3, H, W]. training selects batch
// statistics in batch norm (and updates the running ones).
func (d *Detector) Forward(x *engine.Tensor, training bool) *Outputs {
	return d.forward(&pass{training: training, frozen: d.Frozen}, x)
}

func (d *Detector) forward(p *pass, x *engine.Tensor) *Outputs {
	if x.Rank() != 4 || x.Dim(1) != 3 {
		panic(&engine.OpError{Op: "models.Forward", Shapes: [][]int{x.Shape()}, Err: engine.ErrShape, Detail: "input must be [N, 3, H, W]"})
	}
	o := &Outputs{InputH: x.Dim(2), InputW: x.Dim(3)}
	p.inputH, p.inputW = o.InputH, o.InputW
	bp := p
	if p.frozen {
		fixed := *p
		fixed.training = false
		bp = &fixed
	}
	o.Features = d.FPN.forward(p, d.Backbone.forward(bp, x))
	if d.RPN != nil {
		d.RPN.forward(p, o.Features, o)
	} else {
		d.Head.forward(p, o.Features, o)
	}
	return o
}

// Cost is the compute a detector needs for one image.
type Cost struct {
	Height, Width int
	// MACs counts the multiply-accumulates of every convolution (batch norm,
	// activations, additions and postprocessing are not counted, as usual).
	MACs  int64
	Convs int
	// Params is the number of trainable scalars.
	Params int
}

// FLOPs is 2·MACs.
func (c Cost) FLOPs() int64 { return 2 * c.MACs }

// GFLOPs is FLOPs in billions.
func (c Cost) GFLOPs() float64 { return float64(c.FLOPs()) / 1e9 }

// Cost traces one inference pass on a blank h×w image and counts its
// convolutions. A two-stage detector's box head is counted for the most
// regions inference gives it, rpn.post_nms_topk_test (its fully connected
// layers are convolutions here, so they count as MACs too).
func (d *Detector) Cost(h, w int) Cost {
	c := &Cost{Height: h, Width: w}
	engine.NoGrad(func() {
		o := d.forward(&pass{cost: c}, engine.Zeros(1, 3, h, w))
		if d.BoxHead != nil {
			per := &Cost{}
			rh := d.Config.ROIHead
			d.BoxHead.forward(&pass{cost: per}, engine.Zeros(1, o.Features[0].Dim(1), rh.PoolSize, rh.PoolSize))
			c.MACs += per.MACs * int64(d.Config.RPN.PostNMSTopKTest)
			c.Convs += per.Convs
		}
	})
	c.Params = nn.CountParams(d)
	return *c
}

// Flatten concatenates the levels of o into per-position rows, ordered
// (level, y, x, anchor): cls [N, R, K] logits and reg [N, R, 4]. Both stay
// in the autograd graph.
func Flatten(o *Outputs) (cls, reg *engine.Tensor) {
	a := o.BoxRegs[0].Dim(1) / 4
	return flattenLevels(o.ClsLogits, a), flattenLevels(o.BoxRegs, a)
}

// FlattenCenterness concatenates FCOS centerness logits into [N, R, 1]; nil
// for RetinaNet outputs.
func FlattenCenterness(o *Outputs) *engine.Tensor {
	if len(o.Centerness) == 0 {
		return nil
	}
	return flattenLevels(o.Centerness, 1)
}

// flattenLevels turns per-level [N, A·C, H, W] maps into [N, Σ H·W·A, C].
func flattenLevels(maps []*engine.Tensor, anchors int) *engine.Tensor {
	parts := make([]*engine.Tensor, len(maps))
	for i, m := range maps {
		n, ch, h, w := m.Dim(0), m.Dim(1), m.Dim(2), m.Dim(3)
		c := ch / anchors
		t := engine.Reshape(m, n, anchors, c, h*w)
		t = engine.Permute(t, 0, 3, 1, 2) // [N, HW, A, C]
		parts[i] = engine.Reshape(t, n, h*w*anchors, c)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return engine.Concat(1, parts...)
}
