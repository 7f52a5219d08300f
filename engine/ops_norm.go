package engine

import (
	"math"
	"slices"
)

// BatchNormState holds a batch-norm layer's running statistics, updated in
// training mode with the given momentum (PyTorch convention: new = (1−m)·old + m·batch).
type BatchNormState struct {
	RunningMean, RunningVar *Tensor
	Momentum, Eps           float32
}

// BatchNorm2d normalises x [N, C, H, W] per channel and applies gamma, beta
// [C]. In training mode it uses batch statistics (biased variance for
// normalising, unbiased for the running estimate) and updates st; in eval
// mode it uses st's running statistics.
func BatchNorm2d(x, gamma, beta *Tensor, st *BatchNormState, training bool) *Tensor {
	check(x.Rank() == 4, "BatchNorm2d", "input must be NCHW", nil, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	check(gamma.Len() == c && beta.Len() == c && st.RunningMean.Len() == c && st.RunningVar.Len() == c, "BatchNorm2d", "parameters must have %d channels", []any{c}, x, gamma, beta)
	hw := h * w
	m := n * hw
	out := newResultNoZero(slices.Clone(x.shape))
	mean := make([]float32, c)
	invStd := make([]float32, c)
	if training {
		check(m > 1, "BatchNorm2d", "training needs more than one value per channel", nil, x)
		be().Parallel(c, func(lo, hi int) {
			for ch := lo; ch < hi; ch++ {
				var s, ss float64
				for i := 0; i < n; i++ {
					for _, v := range x.data[(i*c+ch)*hw : (i*c+ch+1)*hw] {
						s += float64(v)
					}
				}
				mu := s / float64(m)
				for i := 0; i < n; i++ {
					for _, v := range x.data[(i*c+ch)*hw : (i*c+ch+1)*hw] {
						d := float64(v) - mu
						ss += d * d
					}
				}
				variance := ss / float64(m)
				mean[ch] = float32(mu)
				invStd[ch] = float32(1 / math.Sqrt(variance+float64(st.Eps)))
				rm, rv := st.RunningMean.data, st.RunningVar.data
				rm[ch] = (1-st.Momentum)*rm[ch] + st.Momentum*float32(mu)
				rv[ch] = (1-st.Momentum)*rv[ch] + st.Momentum*float32(ss/float64(m-1))
			}
		})
	} else {
		for ch := 0; ch < c; ch++ {
			mean[ch] = st.RunningMean.data[ch]
			invStd[ch] = float32(1 / math.Sqrt(float64(st.RunningVar.data[ch])+float64(st.Eps)))
		}
	}
	be().Parallel(n*c, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			ch := t % c
			scale := gamma.data[ch] * invStd[ch]
			shift := beta.data[ch] - mean[ch]*scale
			src := x.data[t*hw : (t+1)*hw]
			dst := out.data[t*hw : (t+1)*hw]
			for k, v := range src {
				dst[k] = v*scale + shift
			}
		}
	})
	record(out, "BatchNorm2d", func(out *Tensor) {
		var gx, gg, gb []float32
		if x.requiresGrad {
			gx = x.ensureGrad()
		}
		if gamma.requiresGrad {
			gg = gamma.ensureGrad()
		}
		if beta.requiresGrad {
			gb = beta.ensureGrad()
		}
		be().Parallel(c, func(lo, hi int) {
			for ch := lo; ch < hi; ch++ {
				var sumG, sumGX float64
				mu, is := mean[ch], invStd[ch]
				for i := 0; i < n; i++ {
					off := (i*c + ch) * hw
					gsrc := out.grad[off : off+hw]
					xs := x.data[off : off+hw]
					for k, g := range gsrc {
						sumG += float64(g)
						sumGX += float64(g) * float64((xs[k]-mu)*is)
					}
				}
				if gg != nil {
					gg[ch] += float32(sumGX)
				}
				if gb != nil {
					gb[ch] += float32(sumG)
				}
				if gx == nil {
					continue
				}
				scale := gamma.data[ch] * is
				if !training {
					for i := 0; i < n; i++ {
						off := (i*c + ch) * hw
						for k, g := range out.grad[off : off+hw] {
							gx[off+k] += g * scale
						}
					}
					continue
				}
				meanG := float32(sumG / float64(m))
				meanGX := float32(sumGX / float64(m))
				for i := 0; i < n; i++ {
					off := (i*c + ch) * hw
					xs := x.data[off : off+hw]
					for k, g := range out.grad[off : off+hw] {
						xhat := (xs[k] - mu) * is
						gx[off+k] += scale * (g - meanG - xhat*meanGX)
					}
				}
			}
		})
	}, x, gamma, beta)
	return out
}
