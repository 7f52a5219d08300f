package models

import (
	"fmt"
	"maps"
	"strings"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/checkpoint"
	"github.com/gidedge/gidedge/engine/nn"
)

// Checkpoint layout. A gidedge checkpoint is a safetensors file (package
// engine/checkpoint) whose tensors are named by section: the detector's
// parameters and buffers under "model.", and whatever a trainer adds (the
// optimizer's state under "optim.", distillation modules under "extra.").
// Its metadata holds MetaFormat and the detector's Config as JSON under
// MetaConfig, so a checkpoint rebuilds its own model.
const (
	MetaFormat    = "format"
	MetaConfig    = "config"
	FormatVersion = "gidedge-checkpoint/1"
	ModelPrefix   = "model."
)

// Prefixed returns m's tensors (nn.State order) with prefix added to every
// name.
func Prefixed(m nn.Module, prefix string) ([]nn.Named, error) {
	state, err := nn.State(m)
	if err != nil {
		return nil, err
	}
	for i := range state {
		state[i].Name = prefix + state[i].Name
	}
	return state, nil
}

// SaveCheckpoint writes the detector, any extra tensors (already prefixed,
// e.g. "optim.…") and the metadata atomically to path. MetaFormat and
// MetaConfig are filled in.
func SaveCheckpoint(path string, d *Detector, extra []nn.Named, meta map[string]string) error {
	tensors, err := Prefixed(d, ModelPrefix)
	if err != nil {
		return fmt.Errorf("models: save %s: %w", path, err)
	}
	tensors = append(tensors, extra...)
	m := maps.Clone(meta)
	if m == nil {
		m = map[string]string{}
	}
	m[MetaFormat] = FormatVersion
	m[MetaConfig] = string(d.Config.JSON())
	if err := checkpoint.Save(path, tensors, m); err != nil {
		return fmt.Errorf("models: %w", err)
	}
	return nil
}

// LoadCheckpoint rebuilds the detector stored in a checkpoint and returns it
// with the file's metadata and every tensor outside the "model." section
// (for a trainer resuming).
func LoadCheckpoint(path string) (*Detector, map[string]string, map[string]*engine.Tensor, error) {
	tensors, meta, err := checkpoint.Load(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("models: %w", err)
	}
	if f := meta[MetaFormat]; f == FormatPretrained {
		return nil, nil, nil, fmt.Errorf("models: %s holds pretrained weights for part of a detector (gidedge import), not a whole detector: train a config that names it under \"pretrained\" (or pass it with --pretrained)", path)
	} else if f != FormatVersion {
		return nil, nil, nil, fmt.Errorf("models: checkpoint %s has format %q in its metadata, want %q (is it a gidedge checkpoint?)", path, f, FormatVersion)
	}
	cfg, err := ParseConfig([]byte(meta[MetaConfig]), "checkpoint "+path+" metadata \"config\"")
	if err != nil {
		return nil, nil, nil, err
	}
	d, err := New(cfg, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("models: checkpoint %s: %w", path, err)
	}
	model, rest := SplitPrefix(tensors, ModelPrefix)
	if err := checkpoint.Assign(d, model); err != nil {
		return nil, nil, nil, fmt.Errorf("models: checkpoint %s: %w", path, err)
	}
	return d, meta, rest, nil
}

// SplitPrefix separates the tensors whose names start with prefix (returned
// with the prefix removed) from the others.
func SplitPrefix(tensors map[string]*engine.Tensor, prefix string) (in, out map[string]*engine.Tensor) {
	in, out = map[string]*engine.Tensor{}, map[string]*engine.Tensor{}
	for name, t := range tensors {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			in[rest] = t
		} else {
			out[name] = t
		}
	}
	return in, out
}
