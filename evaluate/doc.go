// Package evaluate scores object detections against a dataset's
// annotations with the COCO protocol, reproducing pycocotools' COCOeval
// (iouType "bbox") number for number: AP averaged over IoU 0.50:0.05:0.95,
// AP50, AP75, AP for small (area < 32²), medium and large (> 96²) objects,
// AR at 1, 10 and 100 detections per image, precision interpolated at 101
// recall points, greedy matching by descending score, each category on its
// own, crowd (COCO iscrowd, VOC difficult) objects ignored — a detection
// matched to one counts neither as a true nor a false positive, and its IoU
// with a crowd box uses the detection's own area as the denominator. A
// metric with nothing to measure (no ground truth in its category or area
// range) is -1, as in pycocotools.
//
// It also reads and writes COCO results files
// ([{image_id, category_id, bbox: [x, y, w, h], score}]) and plots
// precision-recall curves.
//
// Error policy: every error is returned, lowercase, prefixed "evaluate:",
// names the file, index and field at fault and wraps its cause with %w.
// Detections that refer to an image or category the dataset does not have
// are an error (ErrUnknownImage, ErrUnknownCategory), never silently
// dropped: they almost always mean a results file made for another split or
// with 0-based class indices instead of category ids.
package evaluate
