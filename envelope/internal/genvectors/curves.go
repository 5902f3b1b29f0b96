package main

// Edwards25519 and Curve25519 arithmetic with math/big, slow and plain,
// written from RFC 8032 §5.1 and RFC 7748 §4.1. The generator uses it to
// build the degenerate keys and signatures the vectors need (points off the
// curve, of small order, with a torsion component; signatures whose S is
// not reduced or whose R has small order) and to prove to itself that each
// one is what its vector says. It shares nothing with filippo.io/edwards25519,
// which package keys uses for the same checks.

import (
	"bytes"
	"crypto/sha512"
	"math/big"
	"sort"
)

var (
	fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	// groupL is the order of the prime-order subgroup.
	groupL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	// curveD is -121665/121666, the Edwards curve constant.
	curveD = mod(new(big.Int).Mul(big.NewInt(-121665), inv(big.NewInt(121666))))
)

func mod(x *big.Int) *big.Int { return x.Mod(x, fieldP) }
func inv(x *big.Int) *big.Int { return new(big.Int).ModInverse(x, fieldP) }

// An edPoint is an affine point (x, y) of -x^2 + y^2 = 1 + d x^2 y^2.
type edPoint struct{ x, y *big.Int }

func edIdentity() edPoint { return edPoint{big.NewInt(0), big.NewInt(1)} }

// edBase is the base point B: y = 4/5, x even.
func edBase() edPoint {
	y := mod(new(big.Int).Mul(big.NewInt(4), inv(big.NewInt(5))))
	p, ok := edRecoverX(y, 0)
	if !ok {
		panic("base point")
	}
	return p
}

// edRecoverX finds x for y with the given parity (RFC 8032 §5.1.3, steps
// 2–4), or reports that y is on no point.
func edRecoverX(y *big.Int, sign uint) (edPoint, bool) {
	y2 := mod(new(big.Int).Mul(y, y))
	num := mod(new(big.Int).Sub(y2, big.NewInt(1)))
	den := mod(new(big.Int).Add(new(big.Int).Mul(curveD, y2), big.NewInt(1)))
	x2 := mod(new(big.Int).Mul(num, inv(den)))
	x := new(big.Int).ModSqrt(x2, fieldP)
	if x == nil {
		return edPoint{}, false
	}
	if x.Sign() == 0 && sign == 1 {
		return edPoint{}, false // x = 0 has no negative
	}
	if x.Bit(0) != sign {
		x.Sub(fieldP, x)
	}
	return edPoint{x, new(big.Int).Set(y)}, true
}

func (a edPoint) add(b edPoint) edPoint {
	x1y2 := new(big.Int).Mul(a.x, b.y)
	y1x2 := new(big.Int).Mul(a.y, b.x)
	y1y2 := new(big.Int).Mul(a.y, b.y)
	x1x2 := new(big.Int).Mul(a.x, b.x)
	t := mod(new(big.Int).Mul(curveD, new(big.Int).Mul(x1x2, y1y2)))
	x := mod(new(big.Int).Mul(new(big.Int).Add(x1y2, y1x2), inv(mod(new(big.Int).Add(big.NewInt(1), t)))))
	y := mod(new(big.Int).Mul(new(big.Int).Add(y1y2, x1x2), inv(mod(new(big.Int).Sub(big.NewInt(1), t)))))
	return edPoint{x, y}
}

func (a edPoint) mul(k *big.Int) edPoint {
	r := edIdentity()
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = r.add(r)
		if k.Bit(i) == 1 {
			r = r.add(a)
		}
	}
	return r
}

func (a edPoint) equal(b edPoint) bool { return a.x.Cmp(b.x) == 0 && a.y.Cmp(b.y) == 0 }

func (a edPoint) isSmallOrder() bool { return a.mul(big.NewInt(8)).equal(edIdentity()) }

// encode is RFC 8032 §5.1.2: y little endian, the parity of x in the top bit.
func (a edPoint) encode() []byte {
	b := le(a.y)
	b[31] |= byte(a.x.Bit(0)) << 7
	return b
}

// le returns x as 32 bytes, little endian.
func le(x *big.Int) []byte {
	b := make([]byte, 32)
	x.FillBytes(b)
	for i := 0; i < 16; i++ {
		b[i], b[31-i] = b[31-i], b[i]
	}
	return b
}

func fromLE(b []byte) *big.Int {
	r := make([]byte, len(b))
	for i := range b {
		r[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(r)
}

// edDecode decodes as RFC 8032 §5.1.3 says, rejecting y >= p: it reports
// whether b is the canonical encoding of a point.
func edDecode(b []byte) (edPoint, bool) {
	c := bytes.Clone(b)
	sign := uint(c[31] >> 7)
	c[31] &= 0x7f
	y := fromLE(c)
	if y.Cmp(fieldP) >= 0 {
		return edPoint{}, false
	}
	return edRecoverX(y, sign)
}

// torsion8 returns a point of order 8: [L]P for a point P whose component
// in the 8-torsion has order 8.
var torsion8 = func() edPoint {
	for y := int64(2); ; y++ {
		p, ok := edRecoverX(big.NewInt(y), 0)
		if !ok {
			continue
		}
		t := p.mul(groupL)
		if !t.mul(big.NewInt(4)).equal(edIdentity()) {
			return t
		}
	}
}()

// smallOrderPoints are the eight points of order dividing 8.
var smallOrderPoints = func() []edPoint {
	ps := []edPoint{edIdentity()}
	for i := 1; i < 8; i++ {
		ps = append(ps, ps[i-1].add(torsion8))
	}
	return ps
}()

// lowOrderU are the five u-coordinates, below p, of the Curve25519 points (on
// the curve or its twist) of order dividing 8: the images u = (1+y)/(1-y)
// of the Edwards small-order points other than the identity, and the
// twist's points of order 4, found by the ladder.
var lowOrderU = func() [][]byte {
	seen := map[string]bool{}
	var us [][]byte
	addU := func(u *big.Int) {
		if b := le(u); !seen[string(b)] {
			seen[string(b)] = true
			us = append(us, b)
		}
	}
	for _, p := range smallOrderPoints[1:] {
		one := big.NewInt(1)
		addU(mod(new(big.Int).Mul(new(big.Int).Add(one, p.y), inv(mod(new(big.Int).Sub(one, p.y))))))
	}
	// The twist has order 4·L' (L' prime): its points of order 4 have
	// u = -1 and are the only low-order points not on the curve.
	minus1 := new(big.Int).Sub(fieldP, big.NewInt(1))
	if !x25519LadderIsInfinity(big.NewInt(4), minus1) {
		panic("u = -1 is not of order 4")
	}
	addU(minus1)
	if len(us) != 5 {
		panic("want five low-order u")
	}
	// In increasing order: 0, 1, the two of order 8, p - 1.
	sort.Slice(us, func(i, j int) bool { return fromLE(us[i]).Cmp(fromLE(us[j])) < 0 })
	return us
}()

// x25519LadderIsInfinity runs the RFC 7748 ladder with scalar k (not
// clamped) on u and reports whether the result is the point at infinity.
func x25519LadderIsInfinity(k, u *big.Int) bool {
	a24 := big.NewInt(121665)
	x1, x2, z2, x3, z3 := u, big.NewInt(1), big.NewInt(0), new(big.Int).Set(u), big.NewInt(1)
	swap := uint(0)
	for t := k.BitLen() - 1; t >= 0; t-- {
		kt := k.Bit(t)
		if swap^kt == 1 {
			x2, x3, z2, z3 = x3, x2, z3, z2
		}
		swap = kt
		a := mod(new(big.Int).Add(x2, z2))
		aa := mod(new(big.Int).Mul(a, a))
		b := mod(new(big.Int).Sub(x2, z2))
		bb := mod(new(big.Int).Mul(b, b))
		e := mod(new(big.Int).Sub(aa, bb))
		c := mod(new(big.Int).Add(x3, z3))
		d := mod(new(big.Int).Sub(x3, z3))
		da := mod(new(big.Int).Mul(d, a))
		cb := mod(new(big.Int).Mul(c, b))
		x3 = mod(new(big.Int).Exp(mod(new(big.Int).Add(da, cb)), big.NewInt(2), fieldP))
		z3 = mod(new(big.Int).Mul(x1, mod(new(big.Int).Exp(mod(new(big.Int).Sub(da, cb)), big.NewInt(2), fieldP))))
		x2 = mod(new(big.Int).Mul(aa, bb))
		z2 = mod(new(big.Int).Mul(e, mod(new(big.Int).Add(aa, new(big.Int).Mul(a24, e)))))
	}
	if swap == 1 {
		z2 = z3
	}
	return z2.Sign() == 0
}

// notOnCurveY returns the canonical encoding of the smallest y >= 2 that
// is on no point: a 32-byte string that is no Ed25519 public key.
func notOnCurveY() []byte {
	for y := int64(2); ; y++ {
		if _, ok := edRecoverX(big.NewInt(y), 0); !ok {
			return le(big.NewInt(y))
		}
	}
}

// nonCanonicalEd returns p + y for the smallest y >= 2 on a point of large
// order: a second encoding (y >= p) of a valid key, and that key.
func nonCanonicalEd() (nonCanonical, canonical []byte) {
	for y := int64(2); y < 19; y++ {
		p, ok := edRecoverX(big.NewInt(y), 0)
		if !ok || p.isSmallOrder() {
			continue
		}
		return le(new(big.Int).Add(fieldP, big.NewInt(y))), p.encode()
	}
	panic("no non-canonical encoding below 2^255")
}

// ed25519Scalar is the secret scalar a of an Ed25519 seed (RFC 8032
// §5.1.5), and its public key A = [a]B.
func ed25519Scalar(seed []byte) (*big.Int, edPoint) {
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	a := fromLE(h[:32])
	return a, edBase().mul(a)
}

// signWithR signs msg under seed with the nonce point R = [r]B + extra
// (the identity for an honest signature): it returns R || S with
// S = r + k·a mod L and k = SHA-512(R || A || msg) mod L. With extra of
// small order, the signature satisfies the cofactored equation and not the
// cofactorless one.
func signWithR(seed []byte, r *big.Int, extra edPoint, msg []byte) []byte {
	a, pubA := ed25519Scalar(seed)
	R := edBase().mul(r).add(extra).encode()
	h := sha512.New()
	h.Write(R)
	h.Write(pubA.encode())
	h.Write(msg)
	k := new(big.Int).Mod(fromLE(h.Sum(nil)), groupL)
	s := new(big.Int).Mod(new(big.Int).Add(r, new(big.Int).Mul(k, a)), groupL)
	return append(R, le(s)...)
}

// unreducedS returns sig with S replaced by S + L, which still fits the 32
// bytes and satisfies the verification equation, but is not reduced.
func unreducedS(sig []byte) []byte {
	s := new(big.Int).Add(fromLE(sig[32:]), groupL)
	if s.BitLen() > 253 {
		panic("S + L does not fit")
	}
	return append(bytes.Clone(sig[:32]), le(s)...)
}
