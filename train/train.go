package train

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/engine/optim"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/models"
)

// Files of a run folder.
const (
	LastFile    = "last.safetensors"
	BestFile    = "best.safetensors"
	ConfigFile  = "config.json"
	HParamsFile = "hparams.json"
	MetricsFile = "metrics.jsonl"
	PlotFile    = "metrics.png"
	SummaryFile = "summary.json"
)

// Checkpoint metadata keys written by the trainer (besides models').
const (
	MetaTrainState = "train_state"
	MetaHParams    = "hparams"
	MetaMetrics    = "metrics"
)

const (
	optimPrefix = "optim."
	extraPrefix = "extra."
)

// Result summarises a run (also a resumed or interrupted one).
type Result struct {
	// Epochs and Steps are the completed epochs and the global step count.
	Epochs, Steps int
	// Interrupted is set when the context was cancelled or StopAfter was
	// reached; last.safetensors then holds the exact position.
	Interrupted bool
	BestAP      float64
	BestEpoch   int
	// Final is the last evaluation (nil without any).
	Final *evaluate.Metrics
	// TrainTime is the time spent in training steps (loading included,
	// evaluation excluded) over the whole run, resumes included.
	TrainTime    time.Duration
	ImagesPerSec float64
	StepTime     time.Duration // mean wall time of a step
	DataWait     time.Duration // mean time a step waited for its batch
	Last, Best   string        // checkpoint paths ("" when not written)
	HParams      HParams
}

// Summary is summary.json, written when a run completes: what benchmark
// scripts read.
type Summary struct {
	Model        string            `json:"model"`
	Device       string            `json:"device"`
	Epochs       int               `json:"epochs"`
	Steps        int               `json:"steps"`
	TrainSeconds float64           `json:"train_seconds"`
	ImagesPerSec float64           `json:"train_images_per_s"`
	StepMS       float64           `json:"step_ms"`
	DataWaitMS   float64           `json:"data_wait_ms"`
	BestAP       float64           `json:"best_ap"`
	BestEpoch    int               `json:"best_epoch"`
	Final        *evaluate.Metrics `json:"final,omitempty"`
	HParams      HParams           `json:"hparams"`
}

func (r *Result) summary() Summary {
	return Summary{
		Model: r.HParams.Model, Device: engine.Device().Name(), Epochs: r.Epochs, Steps: r.Steps, TrainSeconds: r.TrainTime.Seconds(),
		ImagesPerSec: r.ImagesPerSec, StepMS: r.StepTime.Seconds() * 1000, DataWaitMS: r.DataWait.Seconds() * 1000,
		BestAP: r.BestAP, BestEpoch: r.BestEpoch, Final: r.Final, HParams: r.HParams,
	}
}

// run is one training run in progress.
type run struct {
	opts   Options
	hp     HParams
	model  *models.Detector
	extra  nn.Module
	params []nn.Named
	opt    optim.Optimizer
	sched  optim.Schedule
	loader *dataset.Loader
	val    *dataset.Dataset
	st     state
	// haveBest is set once best.safetensors holds a model of this run (or,
	// resuming, of the run before); st.BestAP is then its AP.
	haveBest bool
	last     *evaluate.Metrics
	bar      *progressbar.ProgressBar
	logLine  io.Writer
}

// Run trains a detector as Options say and returns a summary. On context
// cancellation it saves last.safetensors at the current step and returns
// the Result with Interrupted set together with the context's error.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Out == "" {
		return nil, errors.New("train: no run folder (Out) given")
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	r := &run{opts: opts, extra: opts.Extra, logLine: opts.Log}
	if r.logLine == nil {
		r.logLine = io.Discard
	}
	var rest map[string]*engine.Tensor
	var err error
	if opts.Resume {
		rest, err = r.restore()
	} else {
		err = r.fresh()
	}
	if err != nil {
		return nil, err
	}
	defer r.closeLoader()
	if err := r.setup(rest); err != nil {
		return nil, err
	}
	return r.loop(ctx)
}

// closeLoader frees the loader's page-locked batch buffers, if any.
func (r *run) closeLoader() {
	if r.loader == nil {
		return
	}
	if err := r.loader.Close(); err != nil {
		fmt.Fprintf(r.logLine, "train: warning: freeing the batch buffers: %v\n", err)
	}
}

// pinnedMemory gives a data loader a device's page-locked memory, which
// the device uploads from asynchronously (backend.PinnedHost).
type pinnedMemory struct{ dev backend.PinnedHost }

func (m pinnedMemory) Alloc(n int) ([]float32, error) { return m.dev.AllocPinned(n) }
func (m pinnedMemory) Reusable(buf []float32) error   { return m.dev.WaitPinned(buf) }
func (m pinnedMemory) Free(buf []float32) error       { return m.dev.FreePinned(buf) }

// fresh prepares a new run: resolve options, load the data, build the model.
func (r *run) fresh() error {
	cfg := r.opts.Config
	if r.opts.Model != nil {
		cfg = r.opts.Model.Config
	}
	r.hp = resolve(&r.opts, &cfg)
	if r.opts.Data == "" {
		return errors.New("train: no dataset folder (Data) given")
	}
	train, err := dataset.Load(r.opts.Data, r.opts.TrainSplit)
	if err != nil {
		return fmt.Errorf("train: training split %q: %w", r.opts.TrainSplit, err)
	}
	_ = train.WriteReport(r.logLine, "train: ")
	names := train.ClassNames()
	switch {
	case cfg.NumClasses == 0:
		cfg = cfg.WithClasses(names)
	case len(cfg.ClassNames) == 0 && cfg.NumClasses == len(names):
		cfg.ClassNames = names
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("train: config %q after applying options: %w", cfg.Name, err)
	}
	if r.opts.Model != nil {
		r.model = r.opts.Model
		r.model.Config = cfg
	} else {
		r.model, err = models.New(cfg, r.opts.Seed)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	if err := r.initPretrained(cfg); err != nil {
		return err
	}
	if r.opts.FreezeBackboneEpochs < 0 || r.opts.FreezeBackboneEpochs > r.hp.Epochs {
		return fmt.Errorf("train: freeze-backbone-epochs %d, want 0 to the %d epochs of the run", r.opts.FreezeBackboneEpochs, r.hp.Epochs)
	}
	trainDS := train
	if err := CheckClasses(r.model, trainDS); err != nil {
		return err
	}
	if err := r.loadData(trainDS); err != nil {
		return err
	}
	cost := r.model.Cost(cfg.Input.Size, cfg.Input.Size)
	r.hp.Params, r.hp.GFLOPs = cost.Params, cost.GFLOPs()
	if err := writeJSONAtomic(filepath.Join(r.opts.Out, ConfigFile), cfg); err != nil {
		return err
	}
	if err := writeJSONAtomic(filepath.Join(r.opts.Out, HParamsFile), r.hp); err != nil {
		return err
	}
	// A fresh run in a used folder starts its metrics afresh.
	if err := os.Remove(filepath.Join(r.opts.Out, MetricsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// initPretrained loads the pretrained weights the options or the config
// name into the fresh detector.
func (r *run) initPretrained(cfg models.Config) error {
	path := r.opts.Pretrained
	switch path {
	case NoPretrained:
		return nil
	case "":
		path = cfg.Pretrained
	}
	if path == "" {
		return nil
	}
	n, err := models.LoadPretrained(r.model, path)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	r.hp.Pretrained, r.hp.PretrainedTensors = path, n
	fmt.Fprintf(r.logLine, "train: %d tensors initialised from %s\n", n, path)
	return nil
}

// restore reopens a run from last.safetensors.
func (r *run) restore() (map[string]*engine.Tensor, error) {
	path := filepath.Join(r.opts.Out, LastFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrResume, path, err)
	}
	d, meta, rest, err := models.LoadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrResume, err)
	}
	if err := json.Unmarshal([]byte(meta[MetaHParams]), &r.hp); err != nil {
		return nil, fmt.Errorf("%w: %s: metadata %q: %v", ErrResume, path, MetaHParams, err)
	}
	if err := json.Unmarshal([]byte(meta[MetaTrainState]), &r.st); err != nil {
		return nil, fmt.Errorf("%w: %s: metadata %q: %v", ErrResume, path, MetaTrainState, err)
	}
	if err := checkResumeOptions(r.opts, r.hp); err != nil {
		return nil, err
	}
	if err := checkHParams(r.hp, d.Config); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.opts.Model != nil {
		// Keep the caller's detector object (a distiller holds it) but give
		// it the saved weights.
		if err := copyState(r.opts.Model, d); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrResume, err)
		}
		d = r.opts.Model
	}
	r.model = d
	data := r.opts.Data
	if data == "" {
		data = r.hp.Data
	}
	r.opts.Data, r.opts.TrainSplit, r.opts.ValSplit = data, r.hp.TrainSplit, r.hp.ValSplit
	r.opts.EvalEvery = r.hp.EvalEvery
	if r.opts.Workers == 0 {
		r.opts.Workers = r.hp.Workers
	}
	if r.opts.LogEvery <= 0 {
		r.opts.LogEvery = cmp.Or(r.hp.LogEvery, 10)
	}
	if r.opts.CheckpointEvery <= 0 {
		r.opts.CheckpointEvery = r.hp.CheckpointEvery
	}
	r.hp.LogEvery, r.hp.CheckpointEvery = r.opts.LogEvery, r.opts.CheckpointEvery
	train, err := dataset.Load(data, r.hp.TrainSplit)
	if err != nil {
		return nil, fmt.Errorf("train: training split %q: %w", r.hp.TrainSplit, err)
	}
	_ = train.WriteReport(r.logLine, "train: ")
	if err := CheckClasses(d, train); err != nil {
		return nil, err
	}
	if len(train.Images) != r.hp.TrainImages {
		return nil, fmt.Errorf("%w: training split %q of %s has %d images, the run was started with %d", ErrResume, r.hp.TrainSplit, data, len(train.Images), r.hp.TrainImages)
	}
	if err := r.loadData(train); err != nil {
		return nil, err
	}
	if err := r.st.validate(r.hp); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := r.restoreBest(); err != nil {
		return nil, err
	}
	// Records of steps after the checkpoint will be made again.
	if err := truncateRecords(filepath.Join(r.opts.Out, MetricsFile), r.st.GlobalStep); err != nil {
		return nil, err
	}
	return rest, nil
}

// restoreBest makes the resumed run compare its evaluations against the
// model best.safetensors holds, whatever the training state says.
func (r *run) restoreBest() error {
	ap, epoch, ok, err := storedBest(r.opts.Out)
	if err != nil || !ok {
		return err
	}
	if r.st.BestEpoch != epoch || math.Abs(r.st.BestAP-ap) > 1e-12 {
		fmt.Fprintf(r.logLine, "train: warning: %s says best AP %.4f at epoch %d, %s holds AP %.4f (epoch %d); comparing new evaluations against %s\n",
			LastFile, r.st.BestAP, r.st.BestEpoch, BestFile, ap, epoch, BestFile)
	}
	r.st.BestAP, r.haveBest = ap, true
	if epoch > 0 {
		r.st.BestEpoch = epoch
	}
	return nil
}

func copyState(dst, src nn.Module) error {
	from, err := nn.State(src)
	if err != nil {
		return err
	}
	to, err := nn.State(dst)
	if err != nil {
		return err
	}
	if len(from) != len(to) {
		return fmt.Errorf("the given model has %d tensors, the checkpoint's %d", len(to), len(from))
	}
	for i := range to {
		if to[i].Name != from[i].Name || to[i].Tensor.Len() != from[i].Tensor.Len() {
			return fmt.Errorf("the given model's tensor %q does not match the checkpoint's %q", to[i].Name, from[i].Name)
		}
		to[i].Tensor.CopyFrom(from[i].Tensor)
	}
	return nil
}

// loadData builds the training loader and loads the validation split.
func (r *run) loadData(train *dataset.Dataset) error {
	cfg := r.model.Config
	if len(train.Images) == 0 {
		return fmt.Errorf("train: training split %q of %s has no images; check the split's list (ImageSets/Main/%s.txt or annotations/instances_%s.json)", r.hp.TrainSplit, r.opts.Data, r.hp.TrainSplit, r.hp.TrainSplit)
	}
	if len(train.Images) < r.hp.Batch {
		return fmt.Errorf("train: training split %q of %s has %d images, fewer than the batch size %d: lower --batch", r.hp.TrainSplit, r.opts.Data, len(train.Images), r.hp.Batch)
	}
	lo := LoaderOptions(cfg, r.hp.ImgSize, r.hp.Batch)
	lo.Shuffle, lo.DropLast, lo.Seed, lo.Workers = true, true, r.hp.Seed, r.opts.Workers
	if p, ok := engine.Device().(backend.PinnedHost); ok {
		lo.Memory = pinnedMemory{p}
	}
	if r.hp.Augment {
		lo.Augment = dataset.DefaultAugment()
	}
	var err error
	if r.loader, err = dataset.NewLoader(train, lo); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	r.hp.TrainImages = len(train.Images)
	r.hp.StepsPerEpoch = r.loader.StepsPerEpoch()
	r.hp.TotalSteps = r.hp.StepsPerEpoch * r.hp.Epochs
	if r.hp.ValSplit != NoEval && r.hp.EvalEvery > 0 {
		if r.val, err = dataset.Load(r.opts.Data, r.hp.ValSplit); err != nil {
			return fmt.Errorf("train: validation split %q (use --val-split %s to train without evaluation): %w", r.hp.ValSplit, NoEval, err)
		}
		_ = r.val.WriteReport(r.logLine, "train: ")
		if err := CheckClasses(r.model, r.val); err != nil {
			return err
		}
		r.hp.ValImages = len(r.val.Images)
	}
	return nil
}

// setup builds the optimizer and schedule and restores their state.
func (r *run) setup(rest map[string]*engine.Tensor) error {
	t := r.model.Config.Train
	params, err := models.Prefixed(r.model, models.ModelPrefix)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	params = nn.Trainable(params)
	if r.extra != nil {
		ex, err := models.Prefixed(r.extra, extraPrefix)
		if err != nil {
			return fmt.Errorf("train: extra module: %w", err)
		}
		params = append(params, nn.Trainable(ex)...)
	}
	r.params = params
	lr := float32(r.hp.LR)
	switch t.Optimizer {
	case "adamw":
		r.opt, err = optim.NewAdamW(params, optim.AdamWConfig{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: float32(t.WeightDecay), Decay: optim.NoDecayForVectors})
	default:
		r.opt, err = optim.NewSGD(params, optim.SGDConfig{LR: lr, Momentum: float32(t.Momentum), WeightDecay: float32(t.WeightDecay), Decay: optim.NoDecayForVectors})
	}
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	total := r.hp.TotalSteps
	warm := optim.Warmup{Steps: min(t.WarmupSteps, total/3), Factor: float32(t.WarmupFactor)}
	r.hp.WarmupSteps = warm.Steps
	if t.Schedule == "step" {
		r.sched, err = optim.NewStepSchedule(lr, warm, []int{total * 2 / 3, total * 8 / 9}, 0.1)
	} else {
		r.sched, err = optim.NewCosineSchedule(lr, lr*0.01, warm, total)
	}
	if err != nil {
		return fmt.Errorf("train: schedule: %w", err)
	}
	if rest == nil {
		return nil
	}
	// Resume: the optimizer's buffers and the extra module.
	optState, others := models.SplitPrefix(rest, optimPrefix)
	named := make([]nn.Named, 0, len(optState))
	for name, t := range optState {
		named = append(named, nn.Named{Name: name, Tensor: t})
	}
	if err := r.opt.LoadState(named); err != nil {
		return fmt.Errorf("%w: %v", ErrResume, err)
	}
	extraState, unknown := models.SplitPrefix(others, extraPrefix)
	if len(unknown) > 0 {
		names := make([]string, 0, len(unknown))
		for n := range unknown {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("%w: checkpoint has tensors outside model./optim./extra.: %s", ErrResume, strings.Join(names, ", "))
	}
	if (r.extra == nil) != (len(extraState) == 0) {
		return fmt.Errorf("%w: the checkpoint has %d extra tensors and the run has extra module %v", ErrResume, len(extraState), r.extra != nil)
	}
	if r.extra != nil {
		if err := assign(r.extra, extraState); err != nil {
			return fmt.Errorf("%w: extra module: %v", ErrResume, err)
		}
	}
	return nil
}

func assign(m nn.Module, tensors map[string]*engine.Tensor) error {
	state, err := nn.State(m)
	if err != nil {
		return err
	}
	if len(state) != len(tensors) {
		return fmt.Errorf("module has %d tensors, checkpoint %d", len(state), len(tensors))
	}
	for _, s := range state {
		t, ok := tensors[s.Name]
		if !ok || t.Len() != s.Tensor.Len() {
			return fmt.Errorf("tensor %q %v missing or of another size in the checkpoint", s.Name, s.Tensor.Shape())
		}
		s.Tensor.CopyFrom(t)
	}
	return nil
}

// window accumulates steps between metrics records.
type window struct {
	n          int
	loss       float64
	parts      map[string]float64
	step, wait time.Duration
	images     int
}

func (w *window) add(loss float32, parts map[string]float32, step, wait time.Duration, images int) {
	if w.parts == nil {
		w.parts = map[string]float64{}
	}
	w.n++
	w.loss += float64(loss)
	for k, v := range parts {
		w.parts[k] += float64(v)
	}
	w.step += step
	w.wait += wait
	w.images += images
}

func (w *window) record(epoch, step int, lr float32) Record {
	n := float64(w.n)
	parts := make(map[string]float64, len(w.parts))
	for k, v := range w.parts {
		parts[k] = v / n
	}
	return Record{
		Type: RecordTrain, Time: time.Now().UTC(), Epoch: epoch, Step: step, Steps: w.n, LR: float64(lr),
		Loss: w.loss / n, Parts: parts,
		StepMS: w.step.Seconds() * 1000 / n, WaitMS: w.wait.Seconds() * 1000 / n,
		ImagesPerSec: float64(w.images) / w.step.Seconds(),
	}
}

func (r *run) loop(ctx context.Context) (*Result, error) {
	hp := r.hp
	if r.opts.Progress != nil {
		r.bar = progressbar.NewOptions(hp.TotalSteps-r.st.GlobalStep,
			progressbar.OptionSetWriter(r.opts.Progress),
			progressbar.OptionSetItsString("step"),
			progressbar.OptionShowIts(),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(18),
			progressbar.OptionThrottle(250*time.Millisecond),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.opts.Progress) }),
		)
	}
	fmt.Fprintf(r.logLine, "train: %s on %s/%s (%d images, %d classes), %d epochs × %d steps, batch %d, %dpx, %.3f GFLOPs, %.2fM params\n",
		r.model.Config.Name, filepath.Base(r.opts.Data), hp.TrainSplit, hp.TrainImages, r.model.Config.NumClasses,
		hp.Epochs, hp.StepsPerEpoch, hp.Batch, hp.ImgSize, hp.GFLOPs, float64(hp.Params)/1e6)
	fmt.Fprintf(r.logLine, "train: device %s\n", engine.Device().Describe())
	if r.st.GlobalStep > 0 {
		fmt.Fprintf(r.logLine, "train: resuming at epoch %d step %d (global step %d)\n", r.st.Epoch+1, r.st.Step, r.st.GlobalStep)
	}
	for r.st.Epoch < hp.Epochs || r.st.EvalPending {
		if frozen := r.st.Epoch < hp.FreezeBackboneEpochs; frozen != r.model.Frozen {
			r.model.SetFrozen(frozen)
			if frozen {
				fmt.Fprintf(r.logLine, "train: backbone frozen for epochs 1–%d\n", hp.FreezeBackboneEpochs)
			}
		}
		stopped, err := r.epoch(ctx)
		if err != nil {
			return nil, err
		}
		if stopped {
			if err := r.saveLast(); err != nil {
				return nil, err
			}
			res := r.result(true)
			fmt.Fprintf(r.logLine, "train: stopped at epoch %d step %d (global step %d); resume with --resume\n", r.st.Epoch+1, r.st.Step, r.st.GlobalStep)
			return res, ctx.Err()
		}
	}
	if r.bar != nil {
		_ = r.bar.Finish()
	}
	res := r.result(false)
	if err := writeJSONAtomic(filepath.Join(r.opts.Out, SummaryFile), res.summary()); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.logLine, "train: done: %d steps in %s (%.1f images/s, %.0f ms/step, data wait %.1f ms/step); best AP %.4f at epoch %d\n",
		res.Steps, res.TrainTime.Round(time.Second), res.ImagesPerSec, res.StepTime.Seconds()*1000, res.DataWait.Seconds()*1000, res.BestAP, res.BestEpoch)
	return res, nil
}

// epoch trains the rest of the current epoch; stopped reports an
// interruption (context or StopAfter) with r.st at the next step to run.
func (r *run) epoch(ctx context.Context) (stopped bool, err error) {
	hp := r.hp
	if r.st.EvalPending {
		return r.endEpoch(ctx)
	}
	it := r.loader.Iterate(ctx, r.st.Epoch, r.st.Step)
	defer it.Close()
	var win window
	for {
		if ctx.Err() != nil || (r.opts.StopAfter > 0 && r.st.GlobalStep >= r.opts.StopAfter) {
			return true, nil
		}
		start := time.Now()
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			return false, fmt.Errorf("train: epoch %d step %d: %w", r.st.Epoch+1, r.st.Step, err)
		}
		lr := r.sched.LR(r.st.GlobalStep)
		r.opt.SetLR(lr)
		loss, parts, err := r.step(b)
		b.Release()
		if err != nil {
			return false, err
		}
		elapsed := time.Since(start)
		r.st.Step++
		r.st.GlobalStep++
		r.st.TrainSeconds += elapsed.Seconds()
		r.st.WaitSeconds += b.Wait.Seconds()
		r.st.Images += int64(b.N)
		win.add(loss, parts, elapsed, b.Wait, b.N)
		if r.bar != nil {
			r.bar.Describe(describe(r.st.Epoch+1, hp.Epochs, loss, parts, lr, b.Wait))
			_ = r.bar.Add(1)
		}
		// Records fall on fixed steps of the epoch, so a run resumed in the
		// middle of an epoch writes the same rows as one that never stopped
		// (its first row averages only the steps since the checkpoint).
		if r.st.Step%r.opts.LogEvery == 0 || r.st.Step == hp.StepsPerEpoch {
			if err := appendRecord(filepath.Join(r.opts.Out, MetricsFile), win.record(r.st.Epoch+1, r.st.GlobalStep, lr)); err != nil {
				return false, err
			}
			win = window{}
		}
		if r.opts.CheckpointEvery > 0 && r.st.GlobalStep%r.opts.CheckpointEvery == 0 && r.st.Step < hp.StepsPerEpoch {
			if err := r.saveLast(); err != nil {
				return false, err
			}
		}
	}
	r.st.Epoch++
	r.st.Step = 0
	r.st.EvalPending = r.val != nil && (r.st.Epoch%hp.EvalEvery == 0 || r.st.Epoch == hp.Epochs)
	return r.endEpoch(ctx)
}

// endEpoch evaluates a completed epoch when due, saves last.safetensors and
// redraws the plot. An interrupted evaluation stays pending in the saved
// state, so a resumed run does it first.
func (r *run) endEpoch(ctx context.Context) (stopped bool, err error) {
	if r.st.EvalPending {
		if err := r.evaluate(ctx, r.st.Epoch); err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			return false, err
		}
		r.st.EvalPending = false
	}
	if err := r.saveLast(); err != nil {
		return false, err
	}
	if err := PlotMetrics(filepath.Join(r.opts.Out, MetricsFile), filepath.Join(r.opts.Out, PlotFile), r.model.Config.Name); err != nil {
		fmt.Fprintf(r.logLine, "train: warning: %v\n", err)
	}
	r.logFigures()
	return false, nil
}

// logFigures writes the device's counters (a GPU's memory) to the log.
func (r *run) logFigures() {
	rep, ok := engine.Device().(backend.Reporter)
	if !ok {
		return
	}
	var sb strings.Builder
	for _, f := range rep.Figures() {
		fmt.Fprintf(&sb, " %s=%.0f", f.Name, f.Value)
	}
	fmt.Fprintf(r.logLine, "train: epoch %d device figures:%s\n", r.st.Epoch, sb.String())
}

// step runs forward, loss, backward and the update for one batch.
func (r *run) step(b *dataset.Batch) (float32, map[string]float32, error) {
	var x *engine.Tensor
	if b.Pinned {
		x = engine.FromPinned(b.Images, b.N, 3, b.H, b.W) // overlaps the previous step's last kernels
	} else {
		x = engine.FromHost(b.Images, b.N, 3, b.H, b.W)
	}
	out := r.model.Forward(x, true)
	loss, parts, err := r.model.Loss(out, b.Targets)
	if err != nil {
		return 0, nil, fmt.Errorf("train: epoch %d step %d: %w", r.st.Epoch+1, r.st.Step, err)
	}
	if r.opts.ExtraLoss != nil {
		extra, ep, err := r.opts.ExtraLoss(&StepContext{Epoch: r.st.Epoch, Step: r.st.Step, GlobalStep: r.st.GlobalStep, Batch: b, Input: x, Model: r.model, Outputs: out})
		if err != nil {
			return 0, nil, fmt.Errorf("train: extra loss at step %d: %w", r.st.GlobalStep, err)
		}
		if extra != nil {
			loss = engine.Add(loss, extra)
		}
		for k, v := range ep {
			parts[k] = v
		}
	}
	value := loss.Item()
	if math.IsNaN(float64(value)) || math.IsInf(float64(value), 0) {
		loss.Release()
		return value, parts, fmt.Errorf("%w: loss is %v at epoch %d step %d (global %d), parts %v; try a lower --lr", ErrDiverged, value, r.st.Epoch+1, r.st.Step, r.st.GlobalStep, parts)
	}
	loss.Backward()
	if clip := r.model.Config.Train.GradClip; clip > 0 {
		if _, err := optim.ClipGradNorm(r.params, float32(clip)); err != nil {
			loss.Release()
			r.opt.ZeroGrad()
			return value, parts, fmt.Errorf("%w: at epoch %d step %d: %v", ErrDiverged, r.st.Epoch+1, r.st.Step, err)
		}
	}
	r.opt.Step()
	r.opt.ZeroGrad()
	loss.Release()
	return value, parts, nil
}

func describe(epoch, epochs int, loss float32, parts map[string]float32, lr float32, wait time.Duration) string {
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "ep %d/%d loss %.3f", epoch, epochs, loss)
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s %.3f", k, parts[k])
	}
	fmt.Fprintf(&sb, " lr %.2g wait %dms", lr, wait.Milliseconds())
	return sb.String()
}

// evaluate scores the validation split and keeps best.safetensors.
func (r *run) evaluate(ctx context.Context, epoch int) error {
	start := time.Now()
	m, _, err := Evaluate(ctx, r.model, r.val, EvalOptions{ImgSize: r.hp.ImgSize, Batch: r.hp.Batch, Workers: r.opts.Workers})
	if err != nil {
		return err
	}
	r.last = m
	rec := Record{Type: RecordEval, Time: time.Now().UTC(), Epoch: epoch, Step: r.st.GlobalStep, Split: r.hp.ValSplit, AP: m.AP, AP50: m.AP50, Metrics: m, EvalSec: time.Since(start).Seconds()}
	if err := appendRecord(filepath.Join(r.opts.Out, MetricsFile), rec); err != nil {
		return err
	}
	best := ""
	if !r.haveBest || m.AP > r.st.BestAP {
		r.st.BestAP, r.st.BestEpoch, r.haveBest = m.AP, epoch, true
		metrics, _ := json.Marshal(m)
		meta := map[string]string{MetaHParams: mustJSON(r.hp), MetaMetrics: string(metrics), MetaEpoch: fmt.Sprint(epoch)}
		if err := models.SaveCheckpoint(filepath.Join(r.opts.Out, BestFile), r.model, nil, meta); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		best = " (best)"
	}
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	fmt.Fprintf(r.logLine, "train: epoch %d/%d %s AP %.4f AP50 %.4f AP75 %.4f (%.1fs)%s\n", epoch, r.hp.Epochs, r.hp.ValSplit, m.AP, m.AP50, m.AP75, time.Since(start).Seconds(), best)
	return nil
}

// saveLast writes the full training state.
func (r *run) saveLast() error {
	var extra []nn.Named
	for _, s := range r.opt.State() {
		extra = append(extra, nn.Named{Name: optimPrefix + s.Name, Tensor: s.Tensor})
	}
	if r.extra != nil {
		ex, err := models.Prefixed(r.extra, extraPrefix)
		if err != nil {
			return fmt.Errorf("train: extra module: %w", err)
		}
		extra = append(extra, ex...)
	}
	meta := map[string]string{MetaTrainState: mustJSON(r.st), MetaHParams: mustJSON(r.hp)}
	if err := models.SaveCheckpoint(filepath.Join(r.opts.Out, LastFile), r.model, extra, meta); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	return string(b)
}

func (r *run) result(interrupted bool) *Result {
	res := &Result{
		Epochs: r.st.Epoch, Steps: r.st.GlobalStep, Interrupted: interrupted,
		BestAP: r.st.BestAP, BestEpoch: r.st.BestEpoch, Final: r.last,
		TrainTime: time.Duration(r.st.TrainSeconds * float64(time.Second)),
		Last:      filepath.Join(r.opts.Out, LastFile), HParams: r.hp,
	}
	if r.st.BestEpoch > 0 {
		res.Best = filepath.Join(r.opts.Out, BestFile)
	}
	if r.st.TrainSeconds > 0 {
		res.ImagesPerSec = float64(r.st.Images) / r.st.TrainSeconds
	}
	if r.st.GlobalStep > 0 {
		res.StepTime = time.Duration(r.st.TrainSeconds / float64(r.st.GlobalStep) * float64(time.Second))
		res.DataWait = time.Duration(r.st.WaitSeconds / float64(r.st.GlobalStep) * float64(time.Second))
	}
	return res
}
