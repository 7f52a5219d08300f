package distill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/train"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// SettingsFile is the run-folder file that records how a run distils.
const SettingsFile = "distill.json"

// GIFolder is the run-folder subfolder GI pictures are written to.
const GIFolder = "gis"

// Settings are a distillation run's choices, saved in SettingsFile.
type Settings struct {
	Teacher       string  `json:"teacher"`
	TeacherMap    string  `json:"teacher_map,omitempty"`
	TeacherConfig string  `json:"teacher_config"`
	Options       Options `json:"options"`
	DumpGIs       int     `json:"dump_gis,omitempty"`
	DumpEvery     int     `json:"dump_every,omitempty"`
}

// RunOptions configure Run: everything package train takes for the
// student, plus the teacher and the distillation settings.
type RunOptions struct {
	// Train configures the student's training exactly as for `gidedge
	// train` (Config is the student's config). Model, Extra and ExtraLoss
	// are set by Run.
	Train train.Options
	// Teacher is a gidedge checkpoint or an ONNX model; TeacherMap an
	// optional OutputMap file for ONNX teachers. On resume an empty
	// Teacher means the run's own.
	Teacher, TeacherMap string
	// Method is nil for the defaults (a fresh run) or the run's saved
	// settings (a resumed one); a resumed run refuses different settings.
	Method *Options
	// DumpGIs is the number of images of a batch to draw with their GIs
	// (0: none), every DumpEvery steps (0: at the first step of each epoch),
	// into <run>/gis/.
	DumpGIs, DumpEvery int
}

// Result is a finished (or interrupted) distillation run.
type Result struct {
	*train.Result
	Settings Settings
	Stats    Stats
}

// Run distils a student from a teacher: package train's loop (progress,
// evaluation, best/last checkpoints, exact resume, curves) with the
// distillation loss added to every step and its parts logged next to the
// detection loss. The adaptation layers are saved in last.safetensors under
// "extra."; best.safetensors holds the plain student.
func Run(ctx context.Context, opts RunOptions) (*Result, error) {
	if opts.Train.Out == "" {
		return nil, errors.New("distill: no run folder (Out) given")
	}
	if err := os.MkdirAll(opts.Train.Out, 0o755); err != nil {
		return nil, fmt.Errorf("distill: %w", err)
	}
	log := opts.Train.Log
	if log == nil {
		log = io.Discard
	}
	settingsPath := filepath.Join(opts.Train.Out, SettingsFile)
	var set Settings
	var student *models.Detector
	if opts.Train.Resume {
		saved, err := readSettings(settingsPath)
		if err != nil {
			return nil, err
		}
		if opts.Method != nil && *opts.Method != saved.Options {
			return nil, fmt.Errorf("%w: distillation settings differ from the run's (%s); start a new run to change them", train.ErrResume, optionDiff(*opts.Method, saved.Options))
		}
		set = saved
		if opts.Teacher != "" {
			set.Teacher, set.TeacherMap = opts.Teacher, opts.TeacherMap
		}
		if opts.DumpGIs > 0 {
			set.DumpGIs, set.DumpEvery = opts.DumpGIs, opts.DumpEvery
		}
		cfgPath := filepath.Join(opts.Train.Out, train.ConfigFile)
		data, err := os.ReadFile(cfgPath)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", train.ErrResume, err)
		}
		cfg, err := models.ParseConfig(data, cfgPath)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", train.ErrResume, err)
		}
		if student, err = models.New(cfg, 0); err != nil {
			return nil, fmt.Errorf("%w: %v", train.ErrResume, err)
		}
	} else {
		set = Settings{Teacher: opts.Teacher, TeacherMap: opts.TeacherMap, Options: DefaultOptions(), DumpGIs: opts.DumpGIs, DumpEvery: opts.DumpEvery}
		if opts.Method != nil {
			set.Options = *opts.Method
		}
		if set.Teacher == "" {
			return nil, errors.New("distill: no teacher given (a gidedge checkpoint or an ONNX model)")
		}
		var err error
		if student, err = buildStudent(opts.Train); err != nil {
			return nil, err
		}
	}
	if err := set.Options.Validate(); err != nil {
		return nil, err
	}
	teacher, err := OpenTeacher(set.Teacher, set.TeacherMap)
	if err != nil {
		return nil, err
	}
	defer teacher.Close()
	set.TeacherConfig = teacher.Config().Name
	dist, err := New(teacher, student, set.Options, opts.Train.Seed)
	if err != nil {
		return nil, err
	}
	if !opts.Train.Resume {
		b, _ := json.MarshalIndent(set, "", "  ")
		if err := atomicfile.WriteFile(settingsPath, append(b, '\n')); err != nil {
			return nil, err
		}
	}

	fmt.Fprintf(log, "distill: teacher %s → student %s: %s\n", teacher.Describe(), student.Config.Name, Describe(set.Options))
	if set.DumpGIs > 0 && !set.Options.usesGIs() {
		fmt.Fprintf(log, "distill: no GI pictures: method %s selects no general instances\n", set.Options.Method)
	}
	topts := opts.Train
	topts.Model = student
	if m := dist.Module(); m != nil {
		topts.Extra = m
	}
	topts.ExtraLoss = func(sc *train.StepContext) (*engine.Tensor, map[string]float32, error) {
		st, err := dist.Step(ctx, sc.Input, sc.Outputs, sc.Batch.Targets)
		if err != nil {
			return nil, nil, err
		}
		if set.DumpGIs > 0 && st.GIs != nil && dumpNow(set.DumpEvery, sc) {
			if err := dumpBatch(filepath.Join(opts.Train.Out, GIFolder), sc, student.Config.Input, st.GIs, set.DumpGIs); err != nil {
				return nil, nil, err
			}
		}
		return st.Loss, st.Parts, nil
	}
	res, err := train.Run(ctx, topts)
	out := &Result{Result: res, Settings: set, Stats: dist.Stats()}
	if s := out.Stats; s.Images > 0 {
		fmt.Fprintf(log, "distill: %.1f GIs per image (positive %.0f%%, semi-positive %.0f%%, negative %.0f%%; %.0f%% of boxes from the teacher)\n",
			float64(s.GIs)/float64(s.Images), pct(s.ByType[GIPositive], s.GIs), pct(s.ByType[GISemi], s.GIs), pct(s.ByType[GINegative], s.GIs), pct(s.FromTeacher, s.GIs))
	}
	if res == nil {
		return nil, err
	}
	return out, err
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// buildStudent makes the student for a fresh run: its config with the
// training data's classes (when the config leaves them open) and the image
// size option applied, initialised from the seed.
func buildStudent(o train.Options) (*models.Detector, error) {
	cfg := o.Config
	if cfg.Name == "" {
		return nil, errors.New("distill: no student config given")
	}
	if cfg.NumClasses == 0 {
		if o.Data == "" {
			return nil, errors.New("distill: no dataset folder (Data) given")
		}
		split := o.TrainSplit
		if split == "" {
			split = "train"
		}
		ds, err := dataset.Load(o.Data, split)
		if err != nil {
			return nil, fmt.Errorf("distill: training split %q: %w", split, err)
		}
		cfg = cfg.WithClasses(ds.ClassNames())
	}
	if o.ImgSize > 0 {
		cfg.Input.Size = o.ImgSize
	}
	d, err := models.New(cfg, o.Seed)
	if err != nil {
		return nil, fmt.Errorf("distill: student: %w", err)
	}
	return d, nil
}

func readSettings(path string) (Settings, error) {
	var s Settings
	data, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("%w: %v (not a distillation run?)", train.ErrResume, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%w: %s: %v", train.ErrResume, path, err)
	}
	return s, nil
}

// optionDiff names the settings that differ, as "field: given vs run's".
func optionDiff(given, was Options) string {
	var a, b map[string]any
	ja, _ := json.Marshal(given)
	jb, _ := json.Marshal(was)
	_ = json.Unmarshal(ja, &a)
	_ = json.Unmarshal(jb, &b)
	var diffs []string
	for k, v := range a {
		if fmt.Sprint(v) != fmt.Sprint(b[k]) {
			diffs = append(diffs, fmt.Sprintf("%s %v, the run's %v", k, v, b[k]))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}

// Describe summarises the settings in one line for logs.
func Describe(o Options) string {
	switch o.Method {
	case MethodFitNet:
		return fmt.Sprintf("FitNet whole-FPN imitation (weight %g)", o.FeatureWeight)
	case MethodFineGrained:
		return fmt.Sprintf("fine-grained imitation (ψ %g, weight %g)", o.FineGrainedThreshold, o.FeatureWeight)
	case MethodResponseKD:
		return fmt.Sprintf("response KD over all positions (weight %g, cls %g, reg %g)", o.ResponseWeight, o.ClsWeight, o.RegWeight)
	}
	var parts []string
	if o.Feature {
		parts = append(parts, fmt.Sprintf("feature %g", o.FeatureWeight))
	}
	if o.Relation {
		parts = append(parts, fmt.Sprintf("relation %g (per %s)", o.RelationWeight, o.RelationScope))
	}
	if o.Response {
		parts = append(parts, fmt.Sprintf("response %g (cls %g, reg %g)", o.ResponseWeight, o.ClsWeight, o.RegWeight))
	}
	return fmt.Sprintf("GID [%s], GIs: top %d of %d, NMS %g, mode %s", strings.Join(parts, ", "), o.TopK, o.PreTopK, o.NMSIoU, o.GIMode)
}

func dumpNow(every int, sc *train.StepContext) bool {
	if every > 0 {
		return sc.GlobalStep%every == 0
	}
	return sc.Step == 0
}

// dumpBatch draws the first n images of the step's batch with their GIs.
func dumpBatch(dir string, sc *train.StepContext, in models.InputConfig, gis [][]GI, n int) error {
	for i := 0; i < min(n, len(gis)); i++ {
		img := DrawGIs(sc.Input, i, in, sc.Batch.Targets[i], gis[i])
		name := fmt.Sprintf("step%06d_img%d.png", sc.GlobalStep, i)
		if err := writePNG(filepath.Join(dir, name), img); err != nil {
			return err
		}
	}
	return nil
}
