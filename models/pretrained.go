package models

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/checkpoint"
	"github.com/gidedge/gidedge/engine/nn"
)

// FormatPretrained marks a file of pretrained weights for part of a
// detector (what `gidedge import` writes): tensors under "model." named as
// in the detector, the config they fit under MetaConfig.
const FormatPretrained = "gidedge-pretrained/1"

// ErrPretrained is wrapped by errors of LoadPretrained: a file whose
// tensors do not fit the detector.
var ErrPretrained = errors.New("models: pretrained weights do not fit")

// SavePretrained writes tensors (named as in the detector, without the
// "model." prefix) with the config they fit and extra metadata, atomically.
func SavePretrained(path string, tensors []nn.Named, cfg Config, meta map[string]string) error {
	out := make([]nn.Named, len(tensors))
	for i, t := range tensors {
		out[i] = nn.Named{Name: ModelPrefix + t.Name, Tensor: t.Tensor}
	}
	m := maps.Clone(meta)
	if m == nil {
		m = map[string]string{}
	}
	m[MetaFormat] = FormatPretrained
	m[MetaConfig] = string(cfg.JSON())
	if err := checkpoint.Save(path, out, m); err != nil {
		return fmt.Errorf("models: %w", err)
	}
	return nil
}

// LoadPretrained copies every "model." tensor of a pretrained file or a
// gidedge checkpoint into the detector's tensor of the same name and
// returns how many it copied. Every such tensor must exist in d with the
// same shape, so a file made for another architecture fails (naming the
// tensor) instead of initialising half a network; d is left unchanged
// then. Tensors of d the file does not hold keep their values.
func LoadPretrained(d *Detector, path string) (int, error) {
	tensors, meta, err := checkpoint.Load(path)
	if err != nil {
		return 0, fmt.Errorf("models: pretrained weights: %w", err)
	}
	if f := meta[MetaFormat]; f != FormatPretrained && f != FormatVersion {
		return 0, fmt.Errorf("%w: %s has format %q, want %q (gidedge import) or %q (a gidedge checkpoint)", ErrPretrained, path, f, FormatPretrained, FormatVersion)
	}
	model, _ := SplitPrefix(tensors, ModelPrefix)
	if len(model) == 0 {
		return 0, fmt.Errorf("%w: %s holds no %q tensors", ErrPretrained, path, ModelPrefix)
	}
	state, err := nn.State(d)
	if err != nil {
		return 0, fmt.Errorf("models: %w", err)
	}
	byName := make(map[string]*engine.Tensor, len(state))
	for _, s := range state {
		byName[s.Name] = s.Tensor
	}
	names := slices.Collect(maps.Keys(model))
	sort.Strings(names)
	for _, name := range names {
		dst, ok := byName[name]
		if !ok {
			return 0, fmt.Errorf("%w: %s: tensor %q %v is not in detector %q (was the file made for another config?)", ErrPretrained, path, name, model[name].Shape(), d.Config.Name)
		}
		if !slices.Equal(dst.Shape(), model[name].Shape()) {
			return 0, fmt.Errorf("%w: %s: tensor %q has shape %v, the detector wants %v", ErrPretrained, path, name, model[name].Shape(), dst.Shape())
		}
	}
	for _, name := range names {
		byName[name].CopyFrom(model[name])
	}
	return len(names), nil
}

// SetFrozen freezes or unfreezes the backbone and an imported neck: while
// frozen their parameters take no gradient (so no optimizer moves them)
// and their batch norms run on running statistics.
func (d *Detector) SetFrozen(frozen bool) {
	d.Frozen = frozen
	for _, p := range d.FrozenParams() {
		p.Tensor.SetRequiresGrad(!frozen)
	}
}

// FrozenParams lists the parameters SetFrozen freezes: the backbone's and
// an imported neck's, named as in the detector.
func (d *Detector) FrozenParams() []nn.Named {
	var out []nn.Named
	d.Backbone.Visit("backbone", func(name string, t *engine.Tensor, trainable bool) {
		if trainable {
			out = append(out, nn.Named{Name: name, Tensor: t})
		}
	})
	if d.FPN.Neck != nil {
		d.FPN.Neck.Visit("fpn.neck", func(name string, t *engine.Tensor, trainable bool) {
			if trainable {
				out = append(out, nn.Named{Name: name, Tensor: t})
			}
		})
	}
	return out
}
