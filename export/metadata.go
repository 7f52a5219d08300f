package export

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/buildinfo"
	"github.com/gidedge/gidedge/models"
)

// ConfigKey is the metadata_props key holding the detector's models.Config
// as JSON, so a distillation teacher's layout can be checked against its
// student. The ModelInfo key is infer.MetadataKey ("gidedge").
const ConfigKey = "gidedge.config"

// pixelScale maps raw 0–255 pixels to the 0–1 range models.InputConfig
// normalises from.
const pixelScale = 1.0 / 255

// ModelInfo returns the metadata a server needs to run an export of cfg with
// the given output mode: models.Config's input becomes infer.Preprocess
// (square size, NCHW, RGB, pixel/255 then (v − mean)/std, its resize mode and
// pad value), its head and postprocessing become infer.HeadInfo.
func ModelInfo(cfg models.Config, outputs string) (infer.ModelInfo, error) {
	if outputs != infer.OutputsDecoded && outputs != infer.OutputsRaw {
		return infer.ModelInfo{}, fmt.Errorf("export: outputs %q, want %q or %q", outputs, infer.OutputsDecoded, infer.OutputsRaw)
	}
	names := slices.Clone(cfg.ClassNames)
	if len(names) == 0 {
		for i := range cfg.NumClasses {
			names = append(names, "class_"+strconv.Itoa(i))
		}
	}
	if len(names) != cfg.NumClasses {
		return infer.ModelInfo{}, fmt.Errorf("export: config %q has %d class names for num_classes %d", cfg.Name, len(names), cfg.NumClasses)
	}
	pp := cfg.Postprocess
	info := infer.ModelInfo{
		GidedgeVersion: buildinfo.Version,
		ClassNames:     names,
		Input: infer.Preprocess{
			Width: cfg.Input.Size, Height: cfg.Input.Size,
			Layout:       infer.LayoutNCHW,
			ChannelOrder: infer.OrderRGB,
			Resize:       cfg.Input.Resize,
			PadValue:     cfg.Input.PadValue,
			PixelScale:   pixelScale,
			Mean:         cfg.Input.Mean,
			Std:          cfg.Input.Std,
		},
		Head: infer.HeadInfo{
			Family:         cfg.Family,
			Outputs:        outputs,
			Strides:        cfg.Strides(),
			ScoreThreshold: pp.ScoreThreshold,
			NMSIoU:         pp.NMSIoU,
			MaxDetections:  pp.MaxDetections,
		},
	}
	if cfg.Family != models.FamilyFCOS {
		info.Head.AnchorSizes = slices.Clone(cfg.Anchors.Sizes)
		info.Head.AnchorRatios = slices.Clone(cfg.Anchors.Ratios)
		info.Head.AnchorScales = slices.Clone(cfg.Anchors.Scales)
	}
	if outputs == infer.OutputsDecoded {
		info.Head.BoxesOutput = BoxesName
		info.Head.ScoresOutput = ScoresName
		if cfg.Family == models.FamilyFCOS {
			info.Head.CenternessOutput = CenternessName
		}
	}
	if err := info.Validate(); err != nil {
		return infer.ModelInfo{}, fmt.Errorf("export: config %q: %w", cfg.Name, err)
	}
	return info, nil
}

// metadata returns the metadata_props entries of an export, keys sorted.
func metadata(cfg models.Config, outputs string) (infer.ModelInfo, [][2]string, error) {
	info, err := ModelInfo(cfg, outputs)
	if err != nil {
		return infer.ModelInfo{}, nil, err
	}
	entries, err := info.Metadata()
	if err != nil {
		return infer.ModelInfo{}, nil, fmt.Errorf("export: %w", err)
	}
	compact, err := json.Marshal(cfg)
	if err != nil {
		return infer.ModelInfo{}, nil, fmt.Errorf("export: encode config %q: %w", cfg.Name, err)
	}
	return info, [][2]string{
		{infer.MetadataKey, entries[infer.MetadataKey]},
		{ConfigKey, string(compact)},
	}, nil
}
