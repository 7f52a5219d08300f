package demo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/models"
)

// Plan is the size of a demo run: the data set, the models and their
// schedules, and how much the measurements sample. FullPlan and QuickPlan
// are the two sizes `gidedge demo` offers; every field goes into the keys of
// the stages it affects, so changing one redoes exactly those stages.
type Plan struct {
	Name string `json:"name"`

	// Synthetic data set of the generator's Preset ("" is the benchmark
	// set): Images square images of Size pixels, split into train/val/test
	// by ValFrac and TestFrac.
	Preset   synth.Preset `json:"preset"`
	Images   int          `json:"images"`
	Size     int          `json:"size"`
	ValFrac  float64      `json:"val_frac"`
	TestFrac float64      `json:"test_frac"`
	Seed     uint64       `json:"seed"`

	// Teacher and Student are named model configs (models.Names); both are
	// trained and served at ImgSize pixels.
	Teacher string `json:"teacher"`
	Student string `json:"student"`
	ImgSize int    `json:"img_size"`

	// Schedules. The student is trained for StudentEpochs twice, alone
	// (baseline) and with GID, with the same seed, data order and
	// hyper-parameters, so distillation is the only difference.
	TeacherEpochs int     `json:"teacher_epochs"`
	StudentEpochs int     `json:"student_epochs"`
	Batch         int     `json:"batch"`
	Optimizer     string  `json:"optimizer"`
	TeacherLR     float64 `json:"teacher_lr"`
	StudentLR     float64 `json:"student_lr"`
	WarmupSteps   int     `json:"warmup_steps"`
	Augment       bool    `json:"augment"`

	// CalibImages training images calibrate INT8 activations.
	CalibImages int `json:"calib_images"`
	// LatencyRuns timed requests (after LatencyWarmup untimed ones) per
	// latency measurement.
	LatencyRuns   int `json:"latency_runs"`
	LatencyWarmup int `json:"latency_warmup"`
	// DrawImages test images are drawn with detections in the report.
	DrawImages int `json:"draw_images"`
}

// FullPlan is the default demo, sized to finish within 10 minutes on a
// 2-core x86 machine (5 min 25 s measured on 2026-11-30, docs/demo.md).
func FullPlan() Plan {
	return Plan{
		Name:   "full",
		Preset: synth.PresetDemo, Images: 600, Size: 160, ValFrac: 0.1, TestFrac: 0.1, Seed: 1,
		Teacher: "retinanet-teacher", Student: "retinanet-student", ImgSize: 160,
		TeacherEpochs: 7, StudentEpochs: 5, Batch: 8,
		Optimizer: "adamw", TeacherLR: 0.003, StudentLR: 0.003, WarmupSteps: 30, Augment: false,
		CalibImages: 64, LatencyRuns: 200, LatencyWarmup: 10, DrawImages: 4,
	}
}

// QuickPlan is a smoke test of every stage in well under 3 minutes: tiny
// images and a few epochs, so its accuracy figures mean little.
func QuickPlan() Plan {
	return Plan{
		Name:   "quick",
		Preset: synth.PresetDemo, Images: 48, Size: 96, ValFrac: 0.125, TestFrac: 0.125, Seed: 1,
		Teacher: "retinanet-teacher", Student: "retinanet-student", ImgSize: 96,
		TeacherEpochs: 4, StudentEpochs: 4, Batch: 4,
		Optimizer: "adamw", TeacherLR: 0.005, StudentLR: 0.005, WarmupSteps: 3, Augment: false,
		CalibImages: 8, LatencyRuns: 20, LatencyWarmup: 2, DrawImages: 2,
	}
}

// validate reports the first setting that cannot run.
func (p Plan) validate() error {
	switch {
	case p.Images < 8:
		return fmt.Errorf("demo: plan %q: %d images, want at least 8", p.Name, p.Images)
	case p.Size < 32:
		return fmt.Errorf("demo: plan %q: image size %d, want at least 32", p.Name, p.Size)
	case p.ImgSize < 32 || p.ImgSize%32 != 0:
		return fmt.Errorf("demo: plan %q: input size %d, want a multiple of 32", p.Name, p.ImgSize)
	case p.TeacherEpochs < 1 || p.StudentEpochs < 1:
		return fmt.Errorf("demo: plan %q: epochs %d/%d, want at least 1", p.Name, p.TeacherEpochs, p.StudentEpochs)
	case p.Batch < 1:
		return fmt.Errorf("demo: plan %q: batch %d, want at least 1", p.Name, p.Batch)
	case p.Optimizer != "adamw" && p.Optimizer != "sgd":
		return fmt.Errorf("demo: plan %q: optimizer %q, want adamw or sgd", p.Name, p.Optimizer)
	case !(p.TeacherLR > 0 && p.StudentLR > 0):
		return fmt.Errorf("demo: plan %q: learning rates %v/%v, want > 0", p.Name, p.TeacherLR, p.StudentLR)
	case p.CalibImages < 1 || p.LatencyRuns < 1 || p.LatencyWarmup < 0 || p.DrawImages < 0:
		return fmt.Errorf("demo: plan %q: calibration images, latency runs and drawn images must be positive", p.Name)
	}
	return nil
}

// modelConfig is the named config with the plan's input size and
// schedule written into it, so `gidedge train --model <saved json>`
// reproduces the run with no other flag.
func (p Plan) modelConfig(name string, epochs int, lr float64) (models.Config, error) {
	cfg, err := models.Named(name)
	if err != nil {
		return cfg, fmt.Errorf("demo: %w", err)
	}
	// The named configs size anchors (RetinaNet) and level ranges (FCOS)
	// for their own input size; at another size the objects shrink with
	// the image, and so must they.
	scale := float32(p.ImgSize) / float32(cfg.Input.Size)
	for i := range cfg.Anchors.Sizes {
		cfg.Anchors.Sizes[i] *= scale
	}
	for i := range cfg.Assigner.SizeRanges {
		for j := range cfg.Assigner.SizeRanges[i] {
			if cfg.Assigner.SizeRanges[i][j] < 1e4 {
				cfg.Assigner.SizeRanges[i][j] *= scale
			}
		}
	}
	cfg.Input.Size = p.ImgSize
	t := &cfg.Train
	t.Optimizer, t.LR, t.Epochs, t.Batch = p.Optimizer, lr, epochs, p.Batch
	t.WarmupSteps, t.Augment = p.WarmupSteps, p.Augment
	if p.Optimizer == "adamw" {
		t.Momentum = 0
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("demo: config %s at %d px: %w", name, p.ImgSize, err)
	}
	return cfg, nil
}

// Spread is a plan measured over several seeds, offline, by
// scripts/bench_demo.sh: what the figures of one demo run are read
// against. Each figure is the mean and the sample standard deviation of
// test mAP over the seeds; every student distils from (or is compared
// with) the seed-1 teacher, as in the demo.
type Spread struct {
	// PlanSHA256 is planDigest of the plan measured: the report quotes
	// the spread only for a run of that very plan.
	PlanSHA256                   string
	Seeds, TeacherSeeds          int
	Teacher, Baseline, GID, Gain [2]float64 // Gain: GID minus the baseline of the same seed
	Measured                     string     // when and under what load
}

// FullPlanSpread is FullPlan measured with scripts/bench_demo.sh; the
// table is in benchmarks/RESULTS.md ("The demo"). TestFullPlanSpread
// fails when FullPlan changes and this is not measured again.
var FullPlanSpread = Spread{
	PlanSHA256:   "6c9b8ff408e16ce6c52387ec9ef5a9f399505eadd4a128400fc8927848c79b07",
	Seeds:        3,
	TeacherSeeds: 3,
	Teacher:      [2]float64{0.4002, 0.0370},
	Baseline:     [2]float64{0.1566, 0.0073},
	GID:          [2]float64{0.2971, 0.0029},
	Gain:         [2]float64{0.1405, 0.0102},
	Measured:     "2026-11-30, 2-core Xeon, alongside one other benchmark",
}

// planDigest is the SHA-256 of the plan's JSON.
func planDigest(p Plan) string {
	data, err := json.Marshal(p)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// spread returns the measured spread of the plan, if it was measured.
func (p Plan) spread() (Spread, bool) {
	if FullPlanSpread.PlanSHA256 != "" && planDigest(p) == FullPlanSpread.PlanSHA256 {
		return FullPlanSpread, true
	}
	return Spread{}, false
}
