// Package dataset reads object-detection datasets and turns them into
// training batches.
//
// Load reads a Pascal VOC folder (Annotations/*.xml, JPEGImages/,
// ImageSets/Main/<split>.txt) or a COCO instances JSON
// (annotations/instances_<split>.json) into one in-memory Dataset. Boxes are
// x1, y1, x2, y2 in pixels of the original image, continuous coordinates: a
// box covering the whole of a W×H image is (0, 0, W, H). VOC's 1-based
// inclusive pixel indices are converted the way Detectron2 does (xmin-1,
// ymin-1). Categories keep their original ids (COCO's are not contiguous);
// Object.Class is the contiguous index into Dataset.Categories that models
// train on.
//
// A Loader turns a Dataset into batches of float32 NCHW RGB tensors with
// their targets: decode (JPEG or PNG), resize (stretch or letterbox),
// seeded augmentation, and a goroutine pipeline that prefetches batches.
// The order of an epoch is a pure function of (seed, epoch) and the
// augmentation of a sample a pure function of (seed, epoch, sample index),
// so training resumes exactly from any step.
//
// Error policy. Annotation problems that have an unambiguous repair are
// repaired and counted, never silent: a box crossing the image border is
// clipped, a box with zero or negative area after clipping is dropped, an
// exact duplicate (same class, same box) is dropped; each kind becomes one
// summary line of Dataset.Report, and Dataset.WriteReport is the one text
// of it that every command loading data prints. Everything else is an error
// that names the file and field (a COCO entry as annotations[3] (id 4)) and
// says what was expected: an unknown class name (the message lists the known
// ones), a missing image file (checked at load), an image path that leads
// outside the dataset folder (a COCO file_name or VOC <filename> with ".." or
// an absolute path elsewhere: annotations never make Load read other files;
// symbolic links placed inside the folder by its owner are followed), an
// image that does not decode (found when a batch is built), malformed XML or
// JSON. Errors are lowercase, start with "dataset:" and wrap their cause with
// %w; conditions callers test are sentinels (ErrUnknownClass,
// ErrMissingImage, ErrOutsideRoot, ErrDecode, ErrNoSplit).
package dataset
