// Package train trains gidedge detectors: the loop behind `gidedge train`,
// built to be reused by distillation.
//
// Run takes Options (a models.Config, a dataset folder, a run folder and the
// hyper-parameters) and trains with the engine's optimizers and schedules,
// the dataset package's prefetching loader and COCO evaluation on a
// validation split. A run folder holds:
//
//	config.json      the resolved model config (classes, sizes, hyper-parameters)
//	hparams.json     the resolved options of the run
//	last.safetensors the latest state: model, optimizer, extra modules, progress
//	best.safetensors the model with the best validation AP so far
//	metrics.jsonl    one JSON object per logged step and per evaluation
//	metrics.png      loss parts and AP over time
//	summary.json     written at the end: train time, images/s, step time, final metrics
//
// Exact resume. The order of every epoch and the augmentation of every
// sample are pure functions of (seed, epoch, index) (package dataset), the
// learning rate a function of the global step, and last.safetensors stores
// the weights, batch-norm statistics, optimizer buffers, the step count and
// the position (epoch, step) to continue from. A run interrupted at any step
// (context cancelled, or Options.StopAfter) and resumed therefore ends with
// weights bit-identical to an uninterrupted run on the same machine.
//
// Reuse. Options.ExtraLoss adds loss terms to every step (it sees the batch,
// the input tensor and the detector's outputs, so a distiller can run its
// teacher and compare), and Options.Extra is a module (adaptation layers)
// whose parameters are optimised with the detector's and saved in
// last.safetensors under "extra.".
//
// Errors are prefixed "train:" and name the file, split or option at fault;
// a non-finite loss stops training with ErrDiverged naming the step and the
// loss parts.
package train
