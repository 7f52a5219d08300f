// Package demo runs the whole gidedge product end to end on data it makes
// itself: the program behind `gidedge demo` and `make demo`.
//
// Run goes through eight stages, each calling the package that owns the
// step (never the command line):
//
//  1. synth     dataset/synth: a synthetic train/val/test set
//  2. teacher   train: a large detector
//  3. baseline  train: a small student trained alone
//  4. gid       distill: the same student distilled from the teacher with GID
//  5. evaluate  train/evaluate: COCO metrics of all three on the test split
//  6. export    export + quantize: the GID student to ONNX (parity checked)
//     and to INT8 QDQ calibrated on training images, both scored on test
//  7. latency   benchlat + serve: fp32 against int8, in process and end to
//     end through a server on 127.0.0.1
//  8. report    REPORT.md, REPORT.html and PNG figures in the output folder
//
// Every number in the report is computed by the run. Each finished stage is
// recorded in manifest.json with a key (a hash of its settings and of its
// inputs' digests) and the size and SHA-256 of every output; a later run
// skips a stage whose key matches and whose outputs are unchanged, and
// redoes it and everything downstream otherwise. Training and distillation
// checkpoint as they go, so an interrupted run continues exactly where it
// stopped. Options.Force redoes every stage.
//
// Errors are prefixed "demo:" and name the stage that failed, wrapping the
// owning package's error with %w. A stage that fails stops the run; the
// stages before it stay recorded and are skipped next time.
package demo
