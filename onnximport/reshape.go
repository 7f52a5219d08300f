package onnximport

import (
	"fmt"
	"slices"

	"github.com/gidedge/gidedge/models"
)

// followInput rewrites a reshape from in to out (both as traced) so that
// it follows the input's size: vary marks the dimensions of in that change
// with the batch or the image size. Dimensions are matched in groups of
// equal products, as a reshape of a contiguous array moves them:
//
//   - one input dimension to one output dimension keeps it ("in2");
//   - one varying input dimension split into several (x.view(N, C, H/2, 2, …))
//     gives the largest part as "in2/2" and the others literally;
//   - several merged into one (flatten) gives their product when one varies;
//   - dimensions that never vary (channels) stay literal.
//
// It returns the target and which output dimensions vary, or an error when
// a group mixes varying dimensions in a way no expression covers.
func followInput(in, out []int, vary []bool) ([]models.ReshapeDim, []bool, error) {
	dims := make([]models.ReshapeDim, len(out))
	outVary := make([]bool, len(out))
	i, j := 0, 0
	for i < len(in) || j < len(out) {
		switch {
		case i == len(in):
			if out[j] != 1 {
				return nil, nil, fmt.Errorf("output dimension %d (%d) has no input dimensions left", j, out[j])
			}
			dims[j] = models.Literal(1)
			j++
			continue
		case j == len(out):
			if in[i] != 1 || vary[i] {
				return nil, nil, fmt.Errorf("input dimension %d (%d) has no output dimensions left", i, in[i])
			}
			i++
			continue
		}
		i0, j0 := i, j
		pi, pj := in[i], out[j]
		i++
		j++
		for pi != pj {
			if pi < pj {
				if i == len(in) {
					return nil, nil, fmt.Errorf("shapes %v and %v do not hold the same elements", in, out)
				}
				pi *= in[i]
				i++
			} else {
				if j == len(out) {
					return nil, nil, fmt.Errorf("shapes %v and %v do not hold the same elements", in, out)
				}
				pj *= out[j]
				j++
			}
		}
		varies := slices.Contains(vary[i0:i], true)
		switch {
		case !varies:
			for k := j0; k < j; k++ {
				dims[k] = models.Literal(out[k])
			}
		case i-i0 == 1 && j-j0 == 1:
			dims[j0] = models.ReshapeDim{From: []int{i0}}
			outVary[j0] = true
		case i-i0 == 1:
			// A split: the largest part follows the input, the rest are
			// block sizes.
			big := j0
			for k := j0 + 1; k < j; k++ {
				if out[k] > out[big] {
					big = k
				}
			}
			div := 1
			for k := j0; k < j; k++ {
				if k != big {
					dims[k] = models.Literal(out[k])
					div *= out[k]
				}
			}
			dims[big] = models.ReshapeDim{From: []int{i0}, Div: div}
			outVary[big] = true
		case j-j0 == 1:
			from := make([]int, 0, i-i0)
			for k := i0; k < i; k++ {
				from = append(from, k)
			}
			dims[j0] = models.ReshapeDim{From: from}
			outVary[j0] = true
		default:
			return nil, nil, fmt.Errorf("input dimensions %d–%d %v become output dimensions %d–%d %v, and the batch or image size runs through them",
				i0, i-1, in[i0:i], j0, j-1, out[j0:j])
		}
	}
	return dims, outVary, nil
}
