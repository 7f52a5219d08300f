// Package models holds gidedge's configurable object detectors: a ResNet-style
// backbone for teachers and a depthwise-separable MobileNetV2-style backbone
// for edge students, a feature pyramid (P3–P5, optionally P6–P7), and three
// head families over it: RetinaNet (anchor based), FCOS (anchor free) and the
// two-stage Faster R-CNN (a region proposal network, then a box head on
// ROIAlign features of its proposals). A teacher and a student of one family
// share the head layout (levels, strides, anchors, classes), which is what
// General Instance Distillation needs to compare their responses position by
// position.
//
// Everything a detector is made of comes from a Config (JSON). Named configs
// ship embedded in the binary (configs/*.json: retinanet-teacher,
// retinanet-student, fcos-teacher, fcos-student, faster-rcnn-teacher,
// faster-rcnn-student, and tiny ones for tests); Resolve also accepts a path
// to a JSON file.
//
// Layout. Images are float32 NCHW, RGB, normalised as Config.Input says. Head
// outputs per FPN level are [N, A·K, H, W] class logits and [N, A·4, H, W]
// box regressions (A anchors per position, K classes, channel a·K+k; the
// RPN's K is 1, its objectness). The box head maps K regions to [K, K+1]
// logits (background last) and [K, 4·K] class-specific deltas. Flatten
// orders the R positions of an image as (level, y, x, anchor), the order
// Priors, DecodeBoxes, PositiveMask and the assigners use. Boxes are x1, y1,
// x2, y2 in input pixels (continuous coordinates).
//
// Errors. Users' mistakes are returned, never panicked: Config.Validate
// joins a *FieldError for every bad config field (name, value, what was
// wanted), and Loss returns an error wrapping ErrTargets for a target class
// the model does not have. Shape mistakes inside a forward pass are
// programmer errors and panic with an *engine.OpError like every engine op;
// nothing here recovers them: the command line's one recover point
// (engine.Guard) does.
package models
