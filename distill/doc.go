// Package distill trains a small student detector while a frozen teacher
// guides it, with General Instance Distillation (GID; Dai et al., CVPR
// 2021) and three baselines to compare it with: FitNet (whole-pyramid
// feature imitation), fine-grained feature imitation (Wang et al. 2019,
// near-ground-truth anchor mask) and response KD (head outputs at every
// position).
//
// Per training step, Distiller.Step runs the teacher (a gidedge checkpoint
// or an ONNX model exposing its pyramid features and raw head outputs, see
// OpenTeacher), selects the general instances (GIs) where teacher and
// student disagree most (Select, the GI selection module), and returns the
// weighted feature, relation and response losses to add to the student's
// detection loss. Run wraps package train's loop around it, so progress,
// evaluation, best/last checkpoints, exact resume and curves work as for
// `gidedge train`; the trainable adaptation layers (Adapter) are saved
// with the student in last.safetensors. DrawGIs renders the selection.
//
// Layout: images are float32 NCHW as the student's config says; pyramid
// features are [N, C, H, W] per level; per-position scores and boxes are
// flat in the models.Flatten order (level, y, x, anchor); GI boxes are x1,
// y1, x2, y2 in input pixels. Teacher and student must share the head
// layout (levels, strides, anchors, classes); CheckLayout says what
// differs.
//
// Errors: everything a user can cause (a teacher whose layout or channels
// differ from the student's, a missing ONNX output, bad options) is
// returned, prefixed "distill:", wrapping ErrLayout or ErrOptions where a
// caller may test for it. Shape mistakes in the losses are programmer
// errors and panic with an *engine.OpError; nothing here recovers them (the
// command line's one recover point does).
package distill
