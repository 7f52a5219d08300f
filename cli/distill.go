package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gidedge/gidedge/distill"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/train"
)

func init() { register(newDistillCmd) }

type distillOptions struct {
	Teacher    string
	TeacherMap string
	Student    string
	runFlags
	DumpGIs   int
	DumpEvery int
	Method    distill.Options
	// MethodSet reports that a distillation flag was given (a resume
	// refuses settings that differ from the run's).
	MethodSet bool
}

func newDistillCmd() *cobra.Command {
	o := distillOptions{Method: distill.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "distill --teacher CKPT|MODEL.onnx --student CONFIG --data DIR --out RUN",
		Short: "Train a student detector from a teacher with General Instance Distillation",
		Long: `distill trains a student detector (a named config: ` + joinNames() + `, or a
config JSON file) on a VOC or COCO dataset while a frozen teacher guides it
with General Instance Distillation (Dai et al., CVPR 2021):

  GISM picks, per image, the K general instances (GIs) where teacher and
  student disagree most (GI score max_c |P_t − P_s|, box of the more
  confident model, top 3000, NMS 0.3 on the score); then
  feature   MSE between ROIAligned teacher FPN features and adapted student
            features (a trainable 3×3 conv per level) of each GI,
  relation  smooth-L1 between the normalised pairwise distances of the GIs'
            features in teacher and student,
  response  BCE of the student's class logits against the teacher's
            probabilities and L1 between box regressions, on the positions
            the student's own assigner matches to the GIs,
  L = L_GT + λ_feat·L_feat + λ_rel·L_rel + λ_resp·(α·L_cls + β·L_reg).

For a two-stage pair (faster-rcnn-teacher → faster-rcnn-student) the GIs
come from the RPNs (objectness and proposal boxes at the same anchors), and
response distillation runs both box heads on the GI boxes: KL divergence of
the student's softmax from the teacher's, and L1 between the class-specific
deltas weighted by the teacher's class probabilities. Its teacher must be a
gidedge checkpoint (its box head runs on the student's GIs).

The teacher is a gidedge checkpoint (run without gradients) or an ONNX model
exposing its FPN features and raw head outputs (gidedge export --outputs raw
--with-features, or any model described by a --teacher-map JSON file). Its
pyramid levels, anchors and classes must match the student's; the error says
which level, shape or class count differs.

Everything train does applies: progress, evaluation every --eval-every
epochs, best.safetensors and last.safetensors, exact --resume, metrics.jsonl
and metrics.png, now with the distillation parts (gid_feat, gid_rel,
gid_cls, gid_reg; kd_* for the baselines) next to cls and box. distill.json
records the teacher and settings. --method selects a KD baseline instead of
GID: fitnet (whole-FPN imitation), fine-grained (Wang et al. 2019, near-GT
anchor mask), response-kd (head outputs at every position; for a two-stage
pair also both box heads on the student's proposals).`,
		Example: `  gidedge distill --teacher runs/rt/best.safetensors --student retinanet-student --data runs/synth --out runs/gid
  gidedge distill --teacher teacher.onnx --student retinanet-student --data ../shared/data/bccd --train-split trainval --val-split test --out runs/gid-bccd
  gidedge distill --teacher runs/rt/best.safetensors --student retinanet-student --data runs/synth --out runs/gid-feat --relation=false --response=false
  gidedge distill --teacher runs/rt/best.safetensors --student retinanet-student --data runs/synth --out runs/fitnet --method fitnet
  gidedge distill --teacher runs/rt/best.safetensors --student retinanet-student --data runs/synth --out runs/gid --dump-gis 4 --dump-every 200
  gidedge distill --teacher runs/frt/best.safetensors --student faster-rcnn-student --data runs/synth --out runs/gid-frcnn
  gidedge distill --out runs/gid --resume`,
		Args: cobra.NoArgs,
	}
	// The distillation settings get a flag set of their own so the command
	// can tell whether any of them was given.
	method := pflag.NewFlagSet("distillation", pflag.ContinueOnError)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		method.VisitAll(func(f *pflag.Flag) { o.MethodSet = o.MethodSet || f.Changed })
		return runDistill(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	f := cmd.Flags()
	f.StringVar(&o.Teacher, "teacher", "", "teacher: gidedge checkpoint or ONNX model (required unless --resume)")
	f.StringVar(&o.TeacherMap, "teacher-map", "", "JSON file naming an ONNX teacher's outputs and config (see docs/distill.md)")
	f.StringVar(&o.Student, "student", "", "student: named config or config JSON file (required unless --resume)")
	o.add(f, "student config")
	f.IntVar(&o.DumpGIs, "dump-gis", 0, "draw this many images of a batch with their GIs into RUN/gis (green positive, orange semi-positive, red negative; thick: teacher's box)")
	f.IntVar(&o.DumpEvery, "dump-every", 0, "steps between GI pictures (0: the first step of every epoch)")

	m := &o.Method
	method.StringVar(&m.Method, "method", m.Method, "gid, or a KD baseline: fitnet, fine-grained, response-kd")
	method.BoolVar(&m.Feature, "feature", m.Feature, "GID feature distillation")
	method.BoolVar(&m.Relation, "relation", m.Relation, "GID relation distillation")
	method.BoolVar(&m.Response, "response", m.Response, "GID response distillation")
	method.Float32Var(&m.FeatureWeight, "feat-weight", m.FeatureWeight, "λ_feat (also the fitnet and fine-grained weight)")
	method.Float32Var(&m.RelationWeight, "rel-weight", m.RelationWeight, "λ_rel")
	method.Float32Var(&m.ResponseWeight, "resp-weight", m.ResponseWeight, "λ_resp (also the response-kd weight)")
	method.Float32Var(&m.ClsWeight, "cls-weight", m.ClsWeight, "α, weight of the response classification part")
	method.Float32Var(&m.RegWeight, "reg-weight", m.RegWeight, "β, weight of the response regression part")
	method.IntVar(&m.TopK, "topk", m.TopK, "K, general instances kept per image")
	method.IntVar(&m.PreTopK, "gi-pre-topk", m.PreTopK, "candidates with the highest GI score entering NMS")
	method.Float32Var(&m.NMSIoU, "gi-nms", m.NMSIoU, "NMS IoU threshold among GIs")
	method.Float32Var(&m.MinSize, "gi-min-size", m.MinSize, "drop GI boxes narrower or shorter than this (input pixels)")
	method.StringVar(&m.GIMode, "gi-mode", m.GIMode, "GIs used: all, gt-only (ground-truth boxes), positive, semi, negative")
	method.StringVar(&m.RelationScope, "relation-scope", m.RelationScope, "pair GIs per image (paper) or per batch (authors' code)")
	method.IntVar(&m.ROISize, "roi-size", m.ROISize, "ROIAlign output side")
	method.IntVar(&m.SamplingRatio, "sampling-ratio", m.SamplingRatio, "ROIAlign samples per bin and axis (0: adaptive)")
	method.IntVar(&m.LevelK0, "level-k0", m.LevelK0, "k0 of the GI level rule k = ⌊k0 + log2(√(wh)/s0)⌋")
	method.Float32Var(&m.LevelS0, "level-s0", m.LevelS0, "s0 of the GI level rule in pixels (0: from the student config, the smallest box it assigns to P4)")
	method.Float32Var(&m.FineGrainedThreshold, "fg-thresh", m.FineGrainedThreshold, "ψ of the fine-grained imitation mask")
	f.AddFlagSet(method)
	cmd.Flags().SortFlags = false
	return withDevice(cmd)
}

func runDistill(ctx context.Context, o distillOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Run.Out == "" {
		return errors.New("distill: --out is required (the run folder)")
	}
	ro := distill.RunOptions{
		Train:   o.options(stdout, stderr),
		Teacher: o.Teacher, TeacherMap: o.TeacherMap, DumpGIs: o.DumpGIs, DumpEvery: o.DumpEvery,
	}
	if o.DumpGIs < 0 || o.DumpEvery < 0 {
		return fmt.Errorf("distill: --dump-gis %d and --dump-every %d, want ≥ 0", o.DumpGIs, o.DumpEvery)
	}
	if o.Run.Resume {
		if o.Student != "" {
			return errors.New("distill: --resume takes the student from the run's checkpoint; drop --student")
		}
		if o.MethodSet {
			m := o.Method
			ro.Method = &m
		}
	} else {
		if o.Student == "" {
			return fmt.Errorf("distill: --student is required: a named config (%s) or a config JSON file", joinNames())
		}
		if o.Teacher == "" {
			return errors.New("distill: --teacher is required: a gidedge checkpoint or an ONNX model with features")
		}
		if o.Run.Data == "" {
			return errors.New("distill: --data is required (a VOC or COCO dataset folder)")
		}
		cfg, err := models.Resolve(o.Student)
		if err != nil {
			return err
		}
		ro.Train.Config = cfg
		m := o.Method
		ro.Method = &m
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := distill.Run(ctx, ro)
	var tr *train.Result
	if res != nil {
		tr = res.Result
	}
	return reportRun(stdout, "distill", o.Run.Out, tr, err)
}
