package ref

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
)

// AdamW implements backend.Backend.
func (r *Backend) AdamW(a backend.AdamWArgs) {
	const k = "AdamW"
	p := Floats(Name, k, a.Param, a.N)
	g := Floats(Name, k, a.Grad, a.N)
	m := Floats(Name, k, a.ExpAvg, a.N)
	v := Floats(Name, k, a.ExpAvgSq, a.N)
	p, m, v = p[:len(g)], m[:len(g)], v[:len(g)]
	for i, gi := range g {
		p[i] *= a.Shrink
		m[i] = a.Beta1*m[i] + (1-a.Beta1)*gi
		v[i] = a.Beta2*v[i] + (1-a.Beta2)*gi*gi
		denom := float32(math.Sqrt(float64(v[i])))*a.InvSqrtBC2 + a.Eps
		p[i] -= a.StepSize * m[i] / denom
	}
}

// SGD implements backend.Backend.
func (r *Backend) SGD(a backend.SGDArgs) {
	const k = "SGD"
	p := Floats(Name, k, a.Param, a.N)
	g := Floats(Name, k, a.Grad, a.N)
	var buf []float32
	if a.Momentum != 0 {
		buf = Floats(Name, k, a.Velocity, a.N)
	}
	for i := range p {
		gi := g[i] + a.WeightDecay*p[i]
		if buf == nil {
			p[i] -= a.LR * gi
			continue
		}
		buf[i] = a.Momentum*buf[i] + gi
		if a.Nesterov {
			p[i] -= a.LR * (gi + a.Momentum*buf[i])
		} else {
			p[i] -= a.LR * buf[i]
		}
	}
}
