// The project's CPU kernels, built by native.py with the system's C++ compiler.
//
// block_linear: weights in a GGUF block format as the file holds them (Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, Q4_K, Q5_K, Q6_K; F16, BF16, F32) multiplied by rows of activations held as
// int16 per group of 32 inputs (x = xq * xd). Every format is read as groups of 32 integer
// codes with a scale (and a minimum), so a group's dot product is integer arithmetic:
//   sum_j w_j x_j = d * xd * sum_j q_j xq_j + m * sum_j x_j
// (vpmaddwd: 16 pairs of 16-bit values multiplied and added pairwise in one instruction).
// A prompt's rows (I8_ROWS or more) in the Qwen files' formats (Q4_0, Q5_0, Q8_0 and the K
// formats) are held as int8 instead where the CPU has VNNI: 64 products an instruction
// (vpdpbusd; see INT8_PROMPTS).
// q4_linear is block_linear for the project's own int4 blocks, GGUF's Q4_1 layout.
// block_rows: rows of such a weight as float32 (an embedding lookup).
//
// attend: one new token's attention over a float32 key/value cache, every query head of
// a key/value head reading that head's keys once (grouped-query attention).
//
// decode_layers: every layer of a Llama/Qwen2 decoder over up to 64 new tokens
// (nativelayers.py), so a pass makes one call instead of some 700 PyTorch ones: the block
// products, and attention over a float16 KV cache cut into chunks of keys that the threads
// share (attend_rows).
#include <immintrin.h>
#include <omp.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QK 32
#define MAXN 64
#define MAXDIM 256
#define MAXG 16

extern "C" int q4_block() { return QK; }
extern "C" int q4_max_rows() { return MAXN; }

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Activations of n rows as int16 per block of 32: x ~ x16 * d (d = amax / 32767, about
// 16 bits of precision), and each block's sum of x, the factor of the weights' minimum.
// (llama.cpp holds them as int8, which costs SmolLM2 0.011 of the eval's similarity;
// int16 products are one AVX2 instruction per 16 weights, vpmaddwd, and decoding waits on
// reading the weights rather than on that arithmetic.)
struct Acts {
    int16_t *x;
    float *d, *sum;
};

static size_t acts_bytes(size_t blocks) {
    return (blocks * (QK * sizeof(int16_t) + 2 * sizeof(float)) + 31) / 32 * 32;
}

static Acts acts_in(uint8_t *mem, size_t blocks) {
    Acts a;
    a.x = (int16_t *)mem;
    a.d = (float *)(a.x + blocks * QK);
    a.sum = a.d + blocks;
    return a;
}

static inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// The activations' groups of 32 share a scale over `span` inputs (32, or a K format's
// 256, whose products then sum a super-block in integers), codes up to `limit`.
static void quantize(const float *x, int n, int in, const Acts &a, int span = QK, float limit = 32767.f) {
    const size_t count = (size_t)n * (in / QK);
    const int per = span / QK;
    const __m256 sign = _mm256_set1_ps(-0.f);
    for (size_t k0 = 0; k0 < count; k0 += per) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < per * QK; j += 8)
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k0 * QK + j)));
        const float amax = hmax(m);
        const __m256 inv = _mm256_set1_ps(amax > 0.f ? limit / amax : 0.f);
        for (size_t k = k0; k < k0 + per; k++) {
            const float *v = x + k * QK;  // rows are contiguous: block k of the flat array
            const __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8),
                         v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
            const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inv));
            const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inv));
            const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inv));
            const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inv));
            _mm256_store_si256((__m256i *)(a.x + k * QK), _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xD8));
            _mm256_store_si256((__m256i *)(a.x + k * QK + 16), _mm256_permute4x64_epi64(_mm256_packs_epi32(i2, i3), 0xD8));
            a.d[k] = amax / limit;
            a.sum[k] = hsum(_mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3)));
        }
    }
}

// GGUF block formats (ggml's type numbers). A weight row is a sequence of blocks; every
// quantized format is read as groups of 32 inputs, each decoded into 32 int16 codes (two
// AVX2 registers: inputs 0-15 and 16-31), a scale for each half (they differ only in Q6_K,
// whose scales cover 16 inputs) and a minimum (Q4_1, Q5_1, Q4_K, Q5_K):
//   w_j = d * q_j + m
// so a group's dot product with activations held as int16 (x = xq * xd) is
//   d * xd * sum_j q_j xq_j + m * sum_j x_j
// in integer arithmetic, 16 products and their pairwise sums in one instruction (vpmaddwd).
// The codes are what the file holds (nothing is rounded again), so the products equal the
// dequantized weights' up to the activations' rounding.
enum {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
    Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30
};

static int block_elems(int f) {
    switch (f) {
    case F32: case F16: case BF16: return 1;
    case Q4_0: case Q4_1: case Q5_0: case Q5_1: case Q8_0: return 32;
    case Q4_K: case Q5_K: case Q6_K: return 256;
    default: return 0;
    }
}

static int block_bytes(int f) {
    switch (f) {
    case F32: return 4;
    case F16: case BF16: return 2;
    case Q4_0: return 18;
    case Q4_1: return 20;
    case Q5_0: return 22;
    case Q5_1: return 24;
    case Q8_0: return 34;
    case Q4_K: return 144;
    case Q5_K: return 176;
    case Q6_K: return 210;
    default: return 0;
    }
}

static bool is_float(int f) { return f == F32 || f == F16 || f == BF16; }
static bool is_k(int f) { return f == Q4_K || f == Q5_K || f == Q6_K; }

// Whether rows of `in` inputs in format f can be read: a known format, whole blocks, and
// (for the quantized ones) whole groups of 32 activations.
static bool readable(int f, int in) {
    const int e = block_elems(f);
    return e > 0 && in > 0 && in % e == 0 && in % QK == 0;
}

extern "C" long long gguf_row_bytes(int f, int in) {
    return readable(f, in) ? (long long)(in / block_elems(f)) * block_bytes(f) : -1;
}

static inline float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

struct Group {
    __m256i q0, q1;
    float d0, d1, m;
};

static inline __m256i nibbles_lo(__m128i raw) { return _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(0x0F))); }
static inline __m256i nibbles_hi(__m128i raw) {
    return _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
}

// 16 bits as 16 int16 lanes: 16 where the lane's bit is set, else 0
static inline __m256i bits16(uint32_t bits) {
    const __m256i lane = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096,
                                           8192, 16384, (short)0x8000);
    const __m256i v = _mm256_and_si256(_mm256_set1_epi16((short)(bits & 0xFFFF)), lane);
    return _mm256_and_si256(_mm256_cmpeq_epi16(v, lane), _mm256_set1_epi16(16));
}

// the K formats' 6-bit scale and minimum of sub-block j (0..7) from their 12 packed bytes
static inline void scale_min_k4(int j, const uint8_t *s, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// A K-format super-block's scales, decoded once for its 8 groups: d0[s], d1[s] the two
// halves' scales of group s (equal but in Q6_K), m[s] its minimum.
struct KScales {
    float d0[8], d1[8], m[8];
};

// eight bytes as eight floats times f
static inline __m256 bytes8(uint64_t v, bool is_signed, float f) {
    const __m128i b = _mm_cvtsi64_si128((long long)v);
    const __m256i w = is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(w), _mm256_set1_ps(f));
}

// Q4_K / Q5_K: the 8 six-bit scales and minimums packed in 12 bytes (scale_min_k4's
// layout) as 8 bytes each, sub-block j in byte j
static inline void k4_scale_bytes(const uint8_t *b, uint64_t *scs, uint64_t *mns) {
    uint32_t w[3];
    memcpy(w, b + 4, 12);
    const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
    *scs = (w[0] & low6) | (uint64_t)((w[2] & low4) | (((w[0] >> 6) & top2) << 4)) << 32;
    *mns = (w[1] & low6) | (uint64_t)(((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4)) << 32;
}

template <int F> static inline void kscales(const uint8_t *b, KScales &k) {
    if (F == Q6_K) {  // 16 signed scales, one per 16 inputs: even ones first halves, odd second
        uint64_t even = 0, odd = 0;
        for (int j = 0; j < 8; j++) {
            even |= (uint64_t)b[192 + 2 * j] << (8 * j);
            odd |= (uint64_t)b[193 + 2 * j] << (8 * j);
        }
        const float d = half(b + 208);
        _mm256_storeu_ps(k.d0, bytes8(even, true, d));
        _mm256_storeu_ps(k.d1, bytes8(odd, true, d));
        _mm256_storeu_ps(k.m, _mm256_setzero_ps());
    } else {
        uint64_t scs, mns;
        k4_scale_bytes(b, &scs, &mns);
        const __m256 d = bytes8(scs, false, half(b));
        _mm256_storeu_ps(k.d0, d);
        _mm256_storeu_ps(k.d1, d);
        _mm256_storeu_ps(k.m, bytes8(mns, false, -half(b + 2)));
    }
}

template <int F> static inline void group(const uint8_t *row, int g, Group &o);

// group g of a K-format row whose super-block's scales are `k` (decoded by kscales)
template <int F> static inline void kgroup(const uint8_t *row, int g, const KScales &k, Group &o) {
    group<F>(row, g, o);  // the codes (its scales are recomputed there; the compiler drops them)
    const int s = g & 7;
    o.d0 = k.d0[s];
    o.d1 = k.d1[s];
    o.m = k.m[s];
}

// group g (inputs 32g..32g+31) of a row in format F
template <int F> static inline void group(const uint8_t *row, int g, Group &o) {
    if (F == Q4_0 || F == Q4_1) {
        const uint8_t *b = row + (size_t)g * (F == Q4_0 ? 18 : 20);
        const uint8_t *qs = b + (F == Q4_0 ? 2 : 4);
        const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
        o.q0 = nibbles_lo(raw);
        o.q1 = nibbles_hi(raw);
        o.d0 = o.d1 = half(b);
        if (F == Q4_0) {
            o.q0 = _mm256_sub_epi16(o.q0, _mm256_set1_epi16(8));
            o.q1 = _mm256_sub_epi16(o.q1, _mm256_set1_epi16(8));
            o.m = 0.f;
        } else {
            o.m = half(b + 2);
        }
    } else if (F == Q5_0 || F == Q5_1) {
        const uint8_t *b = row + (size_t)g * (F == Q5_0 ? 22 : 24);
        const uint8_t *qh = b + (F == Q5_0 ? 2 : 4);
        uint32_t hb;
        memcpy(&hb, qh, 4);
        const __m128i raw = _mm_loadu_si128((const __m128i *)(qh + 4));
        o.q0 = _mm256_or_si256(nibbles_lo(raw), bits16(hb));
        o.q1 = _mm256_or_si256(nibbles_hi(raw), bits16(hb >> 16));
        o.d0 = o.d1 = half(b);
        if (F == Q5_0) {
            o.q0 = _mm256_sub_epi16(o.q0, _mm256_set1_epi16(16));
            o.q1 = _mm256_sub_epi16(o.q1, _mm256_set1_epi16(16));
            o.m = 0.f;
        } else {
            o.m = half(b + 2);
        }
    } else if (F == Q8_0) {
        const uint8_t *b = row + (size_t)g * 34;
        o.q0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 2)));
        o.q1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 18)));
        o.d0 = o.d1 = half(b);
        o.m = 0.f;
    } else if (F == Q4_K || F == Q5_K) {
        const int s = g & 7;
        const uint8_t *b = row + (size_t)(g >> 3) * (F == Q4_K ? 144 : 176);
        const uint8_t *qs = b + (F == Q4_K ? 16 : 48) + 32 * (s >> 1);
        const __m128i r0 = _mm_loadu_si128((const __m128i *)qs);
        const __m128i r1 = _mm_loadu_si128((const __m128i *)(qs + 16));
        if (s & 1) {
            o.q0 = nibbles_hi(r0);
            o.q1 = nibbles_hi(r1);
        } else {
            o.q0 = nibbles_lo(r0);
            o.q1 = nibbles_lo(r1);
        }
        if (F == Q5_K) {
            const uint8_t *qh = b + 16;
            const __m256i one = _mm256_set1_epi16(1);
            const __m128i sh = _mm_cvtsi32_si128(s);
            const __m256i h0 = _mm256_srl_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)qh)), sh);
            const __m256i h1 = _mm256_srl_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(qh + 16))), sh);
            o.q0 = _mm256_or_si256(o.q0, _mm256_slli_epi16(_mm256_and_si256(h0, one), 4));
            o.q1 = _mm256_or_si256(o.q1, _mm256_slli_epi16(_mm256_and_si256(h1, one), 4));
        }
        int sc, mn;
        scale_min_k4(s, b + 4, &sc, &mn);
        o.d0 = o.d1 = half(b) * sc;
        o.m = -half(b + 2) * mn;
    } else if (F == Q6_K) {
        const int s = g & 7, h = s >> 2, t = s & 3;
        const uint8_t *b = row + (size_t)(g >> 3) * 210;
        const uint8_t *ql = b + 64 * h + 32 * (t & 1), *qh = b + 128 + 32 * h;
        const __m128i r0 = _mm_loadu_si128((const __m128i *)ql);
        const __m128i r1 = _mm_loadu_si128((const __m128i *)(ql + 16));
        __m256i l0, l1;
        if (t >= 2) {
            l0 = nibbles_hi(r0);
            l1 = nibbles_hi(r1);
        } else {
            l0 = nibbles_lo(r0);
            l1 = nibbles_lo(r1);
        }
        const __m128i sh = _mm_cvtsi32_si128(2 * t);
        const __m256i three = _mm256_set1_epi16(3), off = _mm256_set1_epi16(32);
        const __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)qh)), sh), three);
        const __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(qh + 16))), sh), three);
        o.q0 = _mm256_sub_epi16(_mm256_or_si256(l0, _mm256_slli_epi16(h0, 4)), off);
        o.q1 = _mm256_sub_epi16(_mm256_or_si256(l1, _mm256_slli_epi16(h1, 4)), off);
        const int8_t *sc = (const int8_t *)(b + 192) + 8 * h + 2 * t;
        const float d = half(b + 208);
        o.d0 = d * sc[0];
        o.d1 = d * sc[1];
        o.m = 0.f;
    }
}

// a row's minimums times its activation rows' group sums: the minimums' share of a product
static inline float mins_dot(const float *mb, const float *xs, int ng) {
    __m256 ms = _mm256_setzero_ps();
    int g = 0;
    for (; g + 8 <= ng; g += 8) ms = _mm256_fmadd_ps(_mm256_loadu_ps(mb + g), _mm256_loadu_ps(xs + g), ms);
    float v = hsum(ms);
    for (; g < ng; g++) v += mb[g] * xs[g];
    return v;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
// With AVX-512 (the build adds its flags where the CPU has it): a group's 32 codes are one
// register, one vpmaddwd a row, and its 16 sums take both scales of Q6_K at once (lanes
// 0-7 are inputs 0-15).
template <int F, int R>
static inline void rows_dot(const int16_t *qb, const float *db, const float *mb, int ng,
                            const Acts &a, int i, float *v) {
    const bool two = F == Q6_K, mins = F == Q4_1 || F == Q5_1 || F == Q4_K || F == Q5_K;
    constexpr int C = R == 1 ? 2 : 1;  // one row alone: two accumulators, groups alternating
    __m512 acc[R * C];
    for (int k = 0; k < R * C; k++) acc[k] = _mm512_setzero_ps();
    for (int g = 0; g < ng; g++) {
        const __m512i q = _mm512_loadu_si512((const void *)(qb + (size_t)g * QK));
        const __m512 d = two ? _mm512_insertf32x8(_mm512_set1_ps(db[2 * g]), _mm256_set1_ps(db[2 * g + 1]), 1)
                             : _mm512_set1_ps(db[2 * g]);
        for (int k = 0; k < R; k++) {
            const size_t at = (size_t)(i + k) * ng + g;
            const __m512i s = _mm512_madd_epi16(q, _mm512_loadu_si512((const void *)(a.x + at * QK)));
            const int slot = C == 2 ? (g & 1) : k;
            acc[slot] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(d, _mm512_set1_ps(a.d[at])), acc[slot]);
        }
    }
    for (int k = 0; k < R; k++) {
        v[k] = C == 2 ? _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])) : _mm512_reduce_add_ps(acc[k]);
        if (mins) v[k] += mins_dot(mb, a.sum + (size_t)(i + k) * ng, ng);
    }
}
#else
// R activation rows (from row i) times one weight row decoded into qb (codes), db (two
// scales a group), mb (minimums): R sums into v. Each group's codes are loaded once for
// the R rows; two accumulators a row let consecutive groups run without waiting.
template <int F, int R>
static inline void rows_dot(const int16_t *qb, const float *db, const float *mb, int ng,
                            const Acts &a, int i, float *v) {
    const bool two = F == Q6_K, mins = F == Q4_1 || F == Q5_1 || F == Q4_K || F == Q5_K;
    __m256 acc0[R], acc1[R];
    for (int k = 0; k < R; k++) acc0[k] = acc1[k] = _mm256_setzero_ps();
    for (int g = 0; g < ng; g++) {
        const __m256i q0 = _mm256_load_si256((const __m256i *)(qb + (size_t)g * QK));
        const __m256i q1 = _mm256_load_si256((const __m256i *)(qb + (size_t)g * QK + 16));
        const __m256 d0 = _mm256_broadcast_ss(db + 2 * g);
        const __m256 d1 = two ? _mm256_broadcast_ss(db + 2 * g + 1) : d0;
        for (int k = 0; k < R; k++) {
            const size_t at = (size_t)(i + k) * ng + g;
            const __m256i *xv = (const __m256i *)(a.x + at * QK);
            const __m256i s0 = _mm256_madd_epi16(q0, _mm256_load_si256(xv));
            const __m256i s1 = _mm256_madd_epi16(q1, _mm256_load_si256(xv + 1));
            const __m256 xg = _mm256_broadcast_ss(a.d + at);
            if (two) {
                acc0[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(d0, xg), acc0[k]);
                acc1[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_mul_ps(d1, xg), acc1[k]);
            } else if (R == 1 && (g & 1)) {
                acc1[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), _mm256_mul_ps(d0, xg), acc1[k]);
            } else {
                acc0[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), _mm256_mul_ps(d0, xg), acc0[k]);
            }
        }
    }
    for (int k = 0; k < R; k++) {
        v[k] = hsum(_mm256_add_ps(acc0[k], acc1[k]));
        if (mins) v[k] += mins_dot(mb, a.sum + (size_t)(i + k) * ng, ng);
    }
}

#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define ROW_DOTS 1
// A decoding step's dot products (one activation row) for the formats of the catalogue's
// files, with AVX-512: a group's 32 codes widened to int16 in one register, K formats read
// a super-block at a time (the 32 bytes of two groups loaded once, their scales decoded
// once and multiplied by the activations' in one vector), so the loops carry little
// address and branch work besides the products.

// Q8_0 (signed codes), Q4_0 / Q5_0 (codes minus 8 / 16, Q5's fifth bit from a 32-bit mask)
template <int F> static inline __m256i bytes_32(const uint8_t *b) {
    if (F == Q8_0) return _mm256_loadu_si256((const __m256i *)(b + 2));
    const __m128i low = _mm_set1_epi8(0x0F);
    const __m128i raw = _mm_loadu_si128((const __m128i *)(b + (F == Q5_0 ? 6 : 2)));
    __m256i bytes = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), low), _mm_and_si128(raw, low));
    if (F == Q5_0) {
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        bytes = _mm256_mask_add_epi8(bytes, (__mmask32)qh, bytes, _mm256_set1_epi8(16));
    }
    return _mm256_sub_epi8(bytes, _mm256_set1_epi8(F == Q5_0 ? 16 : 8));
}

template <int F> static inline __m512i codes_32(const uint8_t *b) { return _mm512_cvtepi8_epi16(bytes_32<F>(b)); }

template <int F> static inline float row_dot_32(const uint8_t *row, int ng, const Acts &a) {
    const int bb = F == Q8_0 ? 34 : F == Q5_0 ? 22 : 18;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int g = 0;
    for (; g + 2 <= ng; g += 2) {  // two blocks a step, one accumulator each
        const uint8_t *b = row + (size_t)g * bb;
        const __m512i s0 = _mm512_madd_epi16(codes_32<F>(b), _mm512_loadu_si512((const void *)(a.x + (size_t)g * QK)));
        const __m512i s1 = _mm512_madd_epi16(codes_32<F>(b + bb), _mm512_loadu_si512((const void *)(a.x + (size_t)(g + 1) * QK)));
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_set1_ps(half(b) * a.d[g]), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_set1_ps(half(b + bb) * a.d[g + 1]), acc1);
    }
    if (g < ng) {
        const uint8_t *b = row + (size_t)g * bb;
        const __m512i s0 = _mm512_madd_epi16(codes_32<F>(b), _mm512_loadu_si512((const void *)(a.x + (size_t)g * QK)));
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_set1_ps(half(b) * a.d[g]), acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

template <int F> static inline void kscales(const uint8_t *b, KScales &k);

// A super-block's 8 groups of codes as bytes: Q4_K / Q5_K (0..15 / 0..31; groups 2c and
// 2c + 1 are the low and high nibbles of the same 32 bytes, and bits 2c, 2c + 1 of qh for
// Q5_K), Q6_K (-32..31, or 0..63 when not Centred: two halves of four groups, low / high
// nibbles of ql's two 32-byte runs with two bits each from qh's 32 bytes)
template <int F, bool Centred = true> static inline void k_bytes(const uint8_t *b, __m256i out[8]) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    if (F == Q6_K) {
        const __m256i three = _mm256_set1_epi8(3);
        for (int h = 0; h < 2; h++) {
            const __m256i q0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
            const __m256i q1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
            const __m256i nib[4] = {_mm256_and_si256(q0, low), _mm256_and_si256(q1, low),
                                    _mm256_and_si256(_mm256_srli_epi16(q0, 4), low),
                                    _mm256_and_si256(_mm256_srli_epi16(q1, 4), low)};
            for (int t = 0; t < 4; t++) {
                const __m256i codes = _mm256_or_si256(nib[t], _mm256_slli_epi16(_mm256_and_si256(hb, three), 4));
                hb = _mm256_srli_epi16(hb, 2);
                out[4 * h + t] = Centred ? _mm256_sub_epi8(codes, _mm256_set1_epi8(32)) : codes;
            }
        }
        return;
    }
    const __m256i one = _mm256_set1_epi8(1);
    const uint8_t *qs = b + (F == Q5_K ? 48 : 16);
    __m256i hb = _mm256_setzero_si256();
    if (F == Q5_K) hb = _mm256_loadu_si256((const __m256i *)(b + 16));
    for (int c = 0; c < 4; c++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i lo = _mm256_and_si256(raw, low), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
        if (F == Q5_K) {
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4));
            hb = _mm256_srli_epi16(hb, 2);
        }
        out[2 * c] = lo;
        out[2 * c + 1] = hi;
    }
}

template <int F> static inline void k_codes(const uint8_t *b, __m512i out[8]) {
    __m256i bytes[8];
    k_bytes<F>(b, bytes);
    for (int s = 0; s < 8; s++) out[s] = _mm512_cvtepi8_epi16(bytes[s]);
}

// Q4_K / Q5_K, a super-block at a time
template <int F> static inline float row_dot_k4(const uint8_t *row, int ng, const Acts &a) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m256 macc = _mm256_setzero_ps();
    alignas(32) float dx[8];
    for (int sb = 0; sb < ng / 8; sb++) {
        const uint8_t *b = row + (size_t)sb * (F == Q5_K ? 176 : 144);
        KScales ks;
        kscales<F>(b, ks);
        _mm256_store_ps(dx, _mm256_mul_ps(_mm256_loadu_ps(ks.d0), _mm256_loadu_ps(a.d + 8 * sb)));
        macc = _mm256_fmadd_ps(_mm256_loadu_ps(ks.m), _mm256_loadu_ps(a.sum + 8 * sb), macc);
        __m512i q[8];
        k_codes<F>(b, q);
        const int16_t *x = a.x + (size_t)sb * 8 * QK;
        for (int s = 0; s < 8; s += 2) {
            const __m512i s0 = _mm512_madd_epi16(q[s], _mm512_loadu_si512((const void *)(x + s * QK)));
            const __m512i s1 = _mm512_madd_epi16(q[s + 1], _mm512_loadu_si512((const void *)(x + (s + 1) * QK)));
            acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_set1_ps(dx[s]), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_set1_ps(dx[s + 1]), acc1);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + hsum(macc);
}

// Q6_K, a super-block at a time: a scale per 16 codes (lanes 0-7 and 8-15 of a group's sums)
static inline float row_dot_q6k(const uint8_t *row, int ng, const Acts &a) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    alignas(32) float d0[8], d1[8];
    for (int sb = 0; sb < ng / 8; sb++) {
        const uint8_t *b = row + (size_t)sb * 210;
        KScales ks;
        kscales<Q6_K>(b, ks);
        const __m256 xd = _mm256_loadu_ps(a.d + 8 * sb);
        _mm256_store_ps(d0, _mm256_mul_ps(_mm256_loadu_ps(ks.d0), xd));
        _mm256_store_ps(d1, _mm256_mul_ps(_mm256_loadu_ps(ks.d1), xd));
        __m512i q[8];
        k_codes<Q6_K>(b, q);
        const int16_t *x = a.x + (size_t)sb * 8 * QK;
        for (int s = 0; s < 8; s += 2) {
            const __m512i v0 = _mm512_madd_epi16(q[s], _mm512_loadu_si512((const void *)(x + s * QK)));
            const __m512i v1 = _mm512_madd_epi16(q[s + 1], _mm512_loadu_si512((const void *)(x + (s + 1) * QK)));
            acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v0), _mm512_insertf32x8(_mm512_set1_ps(d0[s]), _mm256_set1_ps(d1[s]), 1), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v1), _mm512_insertf32x8(_mm512_set1_ps(d0[s + 1]), _mm256_set1_ps(d1[s + 1]), 1), acc1);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// A K-format row decoded for several activation rows (a prompt): each group's codes times
// its integer sub-scale, as int16 (Q4_K 15 x 63, Q5_K 31 x 63, Q6_K 32 x 128 at most), the
// super-block's float scale in db[sb], minimums in mb[g]; with activations sharing one
// scale per super-block the products sum in integers over its groups (`rows_dot_k`).
template <int F> static inline void decode_k_row(const uint8_t *row, int ng, int16_t *qb, float *db, float *mb) {
    for (int sb = 0; sb < ng / 8; sb++) {
        const uint8_t *b = row + (size_t)sb * (F == Q6_K ? 210 : F == Q5_K ? 176 : 144);
        int16_t *out = qb + (size_t)sb * 8 * QK;
        __m512i q[8];
        k_codes<F>(b, q);
        if (F == Q6_K) {
            const int8_t *sc = (const int8_t *)(b + 192);
            db[sb] = half(b + 208);
            for (int s = 0; s < 8; s++) {
                const __m512i scale = _mm512_inserti64x4(_mm512_set1_epi16(sc[2 * s]), _mm256_set1_epi16(sc[2 * s + 1]), 1);
                _mm512_storeu_si512((void *)(out + (size_t)s * QK), _mm512_mullo_epi16(q[s], scale));
                mb[8 * sb + s] = 0.f;
            }
            continue;
        }
        uint64_t scs, mns;
        k4_scale_bytes(b, &scs, &mns);
        const float dmin = half(b + 2);
        db[sb] = half(b);
        for (int s = 0; s < 8; s++) {
            const short sc = (short)((scs >> (8 * s)) & 0xFF);
            _mm512_storeu_si512((void *)(out + (size_t)s * QK), _mm512_mullo_epi16(q[s], _mm512_set1_epi16(sc)));
            mb[8 * sb + s] = -dmin * (float)((mns >> (8 * s)) & 0xFF);
        }
    }
}

// R activation rows (from row i) times a row decoded by decode_k_row: integer sums over a
// super-block's groups (Q6_K: over each half, to stay inside int32), one float step each
template <int F, int R>
static inline void rows_dot_k(const int16_t *qb, const float *db, const float *mb, int ng,
                              const Acts &a, int i, float *v) {
    __m512 accf[R];
    for (int k = 0; k < R; k++) accf[k] = _mm512_setzero_ps();
    for (int sb = 0; sb < ng / 8; sb++) {
        for (int half_ = 0; half_ < 2; half_++) {
            __m512i acci[R];
            for (int k = 0; k < R; k++) acci[k] = _mm512_setzero_si512();
            for (int s = 4 * half_; s < 4 * half_ + 4; s++) {
                const size_t g = (size_t)sb * 8 + s;
                const __m512i q = _mm512_loadu_si512((const void *)(qb + g * QK));
                for (int k = 0; k < R; k++) {
                    const __m512i x = _mm512_loadu_si512((const void *)(a.x + ((size_t)(i + k) * ng + g) * QK));
#ifdef __AVX512VNNI__
                    acci[k] = _mm512_dpwssd_epi32(acci[k], q, x);
#else
                    acci[k] = _mm512_add_epi32(acci[k], _mm512_madd_epi16(q, x));
#endif
                }
            }
            for (int k = 0; k < R; k++) {
                const float f = db[sb] * a.d[(size_t)(i + k) * ng + (size_t)sb * 8];
                accf[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acci[k]), _mm512_set1_ps(f), accf[k]);
            }
        }
    }
    const bool mins = F == Q4_K || F == Q5_K;
    for (int k = 0; k < R; k++) {
        v[k] = _mm512_reduce_add_ps(accf[k]);
        if (mins) v[k] += mins_dot(mb, a.sum + (size_t)(i + k) * ng, ng);
    }
}
#endif

// group g of a row read in order (g = 0, 1, ...): a K format's scales are decoded at the
// first group of each super-block into `ks`
template <int F> static inline void next_group(const uint8_t *row, int g, KScales &ks, Group &G) {
    if (F == Q4_K || F == Q5_K || F == Q6_K) {
        if ((g & 7) == 0) kscales<F>(row + (size_t)(g >> 3) * block_bytes(F), ks);
        kgroup<F>(row, g, ks, G);
    } else {
        group<F>(row, g, G);
    }
}

#if defined(ROW_DOTS) && defined(__AVX512VNNI__)
#define INT8_PROMPTS 1
// Prompts (several activation rows) with VNNI: activations as int8 per group of 32 (one
// scale each, as llama.cpp's Q8_0; more precise than its 8 bits per 256 for K formats),
// stored as x + 128 so that vpdpbusd (unsigned bytes times signed bytes, four products
// summed into each 32-bit lane) multiplies 64 inputs in one instruction, against 32 for
// int16's vpdpwssd. A weight row is decoded once to int8 codes (what the file holds, a
// K format's sub-scales kept apart as floats) and laid out in tiles of 16 units (a unit:
// the 32 inputs of one scale; 16 for Q6_K), lane L of every 64-byte step holding 4 inputs
// of unit L, so a lane sums one unit over the tile's steps and one float step per tile
// applies 16 scales at once. Each lane starts at -128 times its unit's code sum, which
// takes the activations' offset back out.
#define I8_ROWS 4  // fewer activation rows than this keep the int16 path

template <int F> struct Unit { static constexpr int S = F == Q6_K ? 16 : 32; };

static size_t tiles_of(int in, int S) { return ((size_t)in / S + 15) / 16; }

// one activation row: tiles * 16 * S bytes, then 16 lane scales a tile, then a sum per 32;
// rows start on a cache line, so no 64-byte load of the codes straddles two
static size_t row8_bytes(int in, int S) {
    const size_t t = tiles_of(in, S);
    return (t * 16 * S + t * 16 * sizeof(float) + (size_t)(in / QK) * sizeof(float) + 63) / 64 * 64;
}

static size_t acts8_bytes(int n, int in) {
    const size_t a = row8_bytes(in, 32), b = row8_bytes(in, 16);
    return ((a > b ? a : b) * n + 63) / 64 * 64;
}

struct Acts8 {
    const uint8_t *mem;
    size_t row, xbytes, tiles;  // bytes a row, of them codes; tiles a row
    const uint8_t *x(int i) const { return mem + row * i; }
    const float *d(int i) const { return (const float *)(x(i) + xbytes); }
    const float *sum(int i) const { return d(i) + tiles * 16; }
};

// A tile's codes from their natural order (unit L's S bytes at nat + L * S) into lanes:
// step t's 64 bytes are the t-th 4 bytes of units 0..15
template <int S> static inline void to_lanes(const uint8_t *nat, uint8_t *tile) {
    const __m512i units = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(S));
    for (int t = 0; t < S / 4; t++)
        _mm512_storeu_si512((void *)(tile + 64 * t),
                            _mm512_i32gather_epi32(_mm512_add_epi32(units, _mm512_set1_epi32(4 * t)), (const void *)nat, 1));
}

static Acts8 quantize8(const float *x, int n, int in, int S, uint8_t *mem, int threads) {
    Acts8 a;
    a.mem = mem;
    a.tiles = tiles_of(in, S);
    a.xbytes = a.tiles * 16 * S;
    a.row = row8_bytes(in, S);
    const int ng = in / QK, units = in / S, per = 16 * S / QK;  // groups a tile
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n; i++) {
        alignas(64) uint8_t nat[512];
        uint8_t *row = mem + a.row * i;
        float *d = (float *)(row + a.xbytes), *sum = d + a.tiles * 16;
        for (int u = units; u < (int)a.tiles * 16; u++) d[u] = 0.f;  // the last tile's spare lanes
        for (int T = 0; T < (int)a.tiles; T++) {
            memset(nat, 0x80, sizeof nat);
            for (int g = T * per; g < ng && g < (T + 1) * per; g++) {
                const float *v = x + (size_t)i * in + (size_t)g * QK;
                const __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
                const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
                const __m512 inv = _mm512_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
                const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inv));
                const __m128i b0 = _mm512_cvtsepi32_epi8(q0), b1 = _mm512_cvtsepi32_epi8(q1);
                _mm256_store_si256((__m256i *)(nat + (size_t)(g - T * per) * QK),
                                   _mm256_xor_si256(_mm256_set_m128i(b1, b0), _mm256_set1_epi8((char)0x80)));
                const float dg = amax / 127.f;
                if (S == 32) d[g] = dg;
                else d[2 * g] = d[2 * g + 1] = dg;
                // the rounded activations' sum: a minimum's share then rounds with the rest
                sum[g] = (float)_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1)) * dg;
            }
            if (S == 32) to_lanes<32>(nat, row + (size_t)T * 16 * S);
            else to_lanes<16>(nat, row + (size_t)T * 16 * S);
        }
    }
    return a;
}

// a weight row decoded for quantize8's activations: codes in the same lanes, a float
// scale and a starting value per lane, a minimum per group of 32 (Q4_K, Q5_K)
struct Row8 {
    int8_t *q;
    float *ws;
    int32_t *init;
    float *m;
};

static size_t decoded8_bytes(int in) {
    const size_t t = tiles_of(in, 16) > tiles_of(in, 32) * 2 ? tiles_of(in, 16) : tiles_of(in, 32) * 2;
    return (t * 16 * 16 + t * 16 * 8 + (size_t)(in / QK) * sizeof(float) + 63) / 64 * 64;
}

static Row8 row8_in(uint8_t *mem, int in, int S) {
    const size_t t = tiles_of(in, S);
    Row8 r;
    r.q = (int8_t *)mem;
    r.ws = (float *)(mem + t * 16 * S);
    r.init = (int32_t *)(r.ws + t * 16);
    r.m = (float *)(r.init + t * 16);
    return r;
}

// the codes of groups g0.. (up to a tile's) as bytes in their natural order into nat, their
// scales into ws (a unit's) and, for Q4_K / Q5_K, minimums into m (a group's)
template <int F> static inline void natural8(const uint8_t *row, int g0, int count, uint8_t *nat, float *ws, float *m) {
    constexpr bool kf = F == Q4_K || F == Q5_K || F == Q6_K;
    if constexpr (kf) {
        for (int g = g0; g < g0 + count; g += 8) {  // a super-block
            const uint8_t *b = row + (size_t)(g / 8) * block_bytes(F);
            KScales ks;
            kscales<F>(b, ks);
            __m256i bytes[8];
            k_bytes<F>(b, bytes);
            for (int s = 0; s < 8; s++) {
                _mm256_store_si256((__m256i *)(nat + (size_t)(g - g0 + s) * QK), bytes[s]);
                if (F == Q6_K) {
                    ws[2 * (g + s)] = ks.d0[s];
                    ws[2 * (g + s) + 1] = ks.d1[s];
                } else {
                    ws[g + s] = ks.d0[s];
                    m[g + s] = ks.m[s];
                }
            }
        }
    } else {
        static_assert(F == Q8_0 || F == Q4_0 || F == Q5_0, "a format linear() takes as int8");
        const int bb = F == Q8_0 ? 34 : F == Q5_0 ? 22 : 18;
        for (int g = g0; g < g0 + count; g++) {
            const uint8_t *b = row + (size_t)g * bb;
            _mm256_store_si256((__m256i *)(nat + (size_t)(g - g0) * QK), bytes_32<F>(b));
            ws[g] = half(b);
        }
    }
}

template <int F> static inline void decode_row8(const uint8_t *row, int in, const Row8 &o) {
    constexpr int S = Unit<F>::S, per = 16 * S / QK;  // groups a tile
    const int ng = in / QK, units = in / S, tiles = (int)tiles_of(in, S);
    for (int u = units; u < tiles * 16; u++) o.ws[u] = 0.f;
    alignas(64) uint8_t nat[512];
    const __m512i ones = _mm512_set1_epi8(1);
    for (int T = 0; T < tiles; T++) {
        const int g0 = T * per, count = ng - g0 < per ? ng - g0 : per;
        if (count < per) memset(nat, 0, sizeof nat);
        natural8<F>(row, g0, count, nat, o.ws, o.m);
        int8_t *tile = o.q + (size_t)T * 16 * S;
        to_lanes<S>(nat, (uint8_t *)tile);
        __m512i sum = _mm512_setzero_si512();  // each lane's codes summed: its start is -128 times that
        for (int t = 0; t < S / 4; t++) sum = _mm512_dpbusd_epi32(sum, ones, _mm512_loadu_si512((const void *)(tile + 64 * t)));
        _mm512_storeu_si512((void *)(o.init + 16 * T), _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7)));
    }
}

// R activation rows (from row i) times a row decoded by decode_row8 into v
template <int F, int R>
static inline void rows_dot8(const Row8 &w, int in, const Acts8 &a, int i, float *v) {
    constexpr int S = Unit<F>::S;
    const int tiles = (int)a.tiles;
    __m512 accf[R];
    for (int k = 0; k < R; k++) accf[k] = _mm512_setzero_ps();
    for (int T = 0; T < tiles; T++) {
        const __m512i init = _mm512_loadu_si512((const void *)(w.init + 16 * T));
        __m512i acc[R];
        for (int k = 0; k < R; k++) acc[k] = init;
        const int8_t *wq = w.q + (size_t)T * 16 * S;
        for (int t = 0; t < S / 4; t++) {
            const __m512i wv = _mm512_loadu_si512((const void *)(wq + 64 * t));
            for (int k = 0; k < R; k++)
                acc[k] = _mm512_dpbusd_epi32(acc[k], _mm512_loadu_si512((const void *)(a.x(i + k) + (size_t)T * 16 * S + 64 * t)), wv);
        }
        const __m512 ws = _mm512_loadu_ps(w.ws + 16 * T);
        for (int k = 0; k < R; k++)
            accf[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[k]), _mm512_mul_ps(ws, _mm512_loadu_ps(a.d(i + k) + 16 * T)), accf[k]);
    }
    const bool mins = F == Q4_K || F == Q5_K;
    for (int k = 0; k < R; k++) {
        v[k] = _mm512_reduce_add_ps(accf[k]);
        if (mins) v[k] += mins_dot(w.m, a.sum(i + k), in / QK);
    }
}

// A decoding step (one activation row) in the K formats with VNNI: the activations as int8
// per group of 32 in their natural order (the prompts' precision), the weights' codes as
// the file holds them (unsigned: Q6_K's -32 is taken out through the activations' sums
// per 16), so vpdpbusd multiplies two groups (64 inputs) in one instruction with no
// decoding step besides the nibbles; one float step per two groups applies their scales.
// The int16 path this replaces for them needed twice the multiplies and a widening each.
struct Acts1 {
    int8_t *x;  // in codes
    float *d, *sum;  // a scale and the rounded activations' sum per 32
    float *c16;  // -32 times the codes' sum per 16 (Q6_K's offset)
};

// a row's bytes in quantize1's layout, a multiple of 64 (rows follow one another)
static size_t acts1_stride(int in) {
    return (((size_t)in + 63) / 64 * 64 + ((size_t)(in / QK) * 2 + (size_t)(in / 16)) * sizeof(float) + 63) / 64 * 64;
}

static Acts1 quantize1(const float *x, int in, uint8_t *mem) {
    Acts1 a;
    const int ng = in / QK;
    a.x = (int8_t *)mem;
    a.d = (float *)(mem + ((size_t)in + 63) / 64 * 64);
    a.sum = a.d + ng;
    a.c16 = a.sum + ng;
    for (int g = 0; g < ng; g++) {
        const __m512 v0 = _mm512_loadu_ps(x + (size_t)g * QK), v1 = _mm512_loadu_ps(x + (size_t)g * QK + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const __m512 inv = _mm512_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
        const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inv));
        _mm_storeu_si128((__m128i *)(a.x + (size_t)g * QK), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(a.x + (size_t)g * QK + 16), _mm512_cvtsepi32_epi8(q1));
        const int s0 = _mm512_reduce_add_epi32(q0), s1 = _mm512_reduce_add_epi32(q1);
        a.d[g] = amax / 127.f;
        a.sum[g] = (float)(s0 + s1) * a.d[g];
        a.c16[2 * g] = -32.f * (float)s0;
        a.c16[2 * g + 1] = -32.f * (float)s1;
    }
    return a;
}

// One weight row times R activation rows (R = 1: a decoding step; up to FEW_ROWS: a verify
// pass over a draft's tokens): each super-block's codes and scales decoded once, into
// registers, for all R rows. The tile path (linear8) decodes each weight row into memory
// first, which pays from a prompt's many rows but costs a verify pass several steps.
#define FEW_ROWS 8

template <int F, int R>
static inline void rows_dot1_k(const uint8_t *row, int ng, const Acts1 *a, float *v) {
    static_assert(F == Q4_K || F == Q5_K || F == Q6_K, "a K format");
    constexpr int bb = F == Q6_K ? 210 : F == Q5_K ? 176 : 144;
    const __m512i zero = _mm512_setzero_si512();
    __m512i idx[4];
    for (int c = 0; c < 4; c++)
        idx[c] = F == Q6_K ? _mm512_setr_epi32(4 * c, 4 * c, 4 * c, 4 * c, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1,
                                               4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3)
                           : _mm512_setr_epi32(2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c,
                                               2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1);
    const __m512i interleave = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    // each row's sums in the same order whatever R: a verify pass's rows are bit for bit
    // the steps' (speculation's greedy text is then exactly decoding's)
    __m512 acc0[R], acc1[R], extra[R];
    __m256 macc[R];
    for (int k = 0; k < R; k++) acc0[k] = acc1[k] = extra[k] = _mm512_setzero_ps(), macc[k] = _mm256_setzero_ps();
    for (int sb = 0; sb < ng / 8; sb++) {
        const uint8_t *b = row + (size_t)sb * bb;
        KScales ks;
        kscales<F>(b, ks);
        __m256i bytes[8];
        k_bytes<F, false>(b, bytes);
        __m512i w[4];
        for (int c = 0; c < 4; c++) w[c] = _mm512_inserti64x4(_mm512_castsi256_si512(bytes[2 * c]), bytes[2 * c + 1], 1);
        const __m256 d0 = _mm256_loadu_ps(ks.d0);
        const __m256 d1 = F == Q6_K ? _mm256_loadu_ps(ks.d1) : d0;
        const __m256 mins = F == Q6_K ? d0 : _mm256_loadu_ps(ks.m);
        for (int k = 0; k < R; k++) {
            const int8_t *x = a[k].x + (size_t)sb * 8 * QK;
            const __m256 xd = _mm256_loadu_ps(a[k].d + 8 * sb);
            __m512 f;
            if (F == Q6_K) {
                f = _mm512_permutex2var_ps(_mm512_castps256_ps512(_mm256_mul_ps(d0, xd)), interleave,
                                           _mm512_castps256_ps512(_mm256_mul_ps(d1, xd)));
                extra[k] = _mm512_fmadd_ps(f, _mm512_loadu_ps(a[k].c16 + 16 * sb), extra[k]);
            } else {
                f = _mm512_castps256_ps512(_mm256_mul_ps(d0, xd));
                macc[k] = _mm256_fmadd_ps(mins, _mm256_loadu_ps(a[k].sum + 8 * sb), macc[k]);
            }
            for (int c = 0; c < 4; c++) {
                const __m512i dot = _mm512_dpbusd_epi32(zero, w[c], _mm512_loadu_si512((const void *)(x + 64 * c)));
                const __m512 sc = _mm512_permutexvar_ps(idx[c], f);
                if (c & 1) acc1[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sc, acc1[k]);
                else acc0[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sc, acc0[k]);
            }
        }
    }
    for (int k = 0; k < R; k++) v[k] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0[k], acc1[k]), extra[k])) + hsum(macc[k]);
}

// y [n, out] (+)= h [n, in] @ W.T for n <= FEW_ROWS rows in a K format (rows `stride` apart)
template <int F>
static void product_few(const uint8_t *W, int out, int in, const float *h, int n, uint8_t *acts,
                        float *y, size_t stride, bool add, int threads) {
    Acts1 a[FEW_ROWS];
    for (int i = 0; i < n; i++) a[i] = quantize1(h + (size_t)i * in, in, acts + (size_t)i * acts1_stride(in));
    const int ng = in / QK;
    const size_t rb = (size_t)(in / 256) * block_bytes(F);
    if (n == 1) {  // a decoding step: its own loop, the hot one
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int r = 0; r < out; r++) {
            float v;
            rows_dot1_k<F, 1>(W + (size_t)r * rb, ng, a, &v);
            y[r] = add ? y[r] + v : v;
        }
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < out; r++) {
        const uint8_t *row = W + (size_t)r * rb;
        float v[FEW_ROWS];
        int i = 0;
        for (; i + 4 <= n; i += 4) rows_dot1_k<F, 4>(row, ng, a + i, v + i);
        switch (n - i) {
        case 3: rows_dot1_k<F, 3>(row, ng, a + i, v + i); break;
        case 2: rows_dot1_k<F, 2>(row, ng, a + i, v + i); break;
        case 1: rows_dot1_k<F, 1>(row, ng, a + i, v + i); break;
        }
        for (int k = 0; k < n; k++) y[(size_t)k * stride + r] = add ? y[(size_t)k * stride + r] + v[k] : v[k];
    }
}

// products of one activation row with several K-format weights (a layer's q, k and v; its
// gate and up) in one parallel loop: each call of a parallel loop ends waiting for the
// slower thread, and a decoding step of the 1.5B made some 200 of them
struct Part {
    const uint8_t *W;
    int f, out;
    float *y;
};

static void product1_parts(const Part *parts, int count, int in, const float *h, uint8_t *acts, int threads) {
    const Acts1 a = quantize1(h, in, acts);
    const int ng = in / QK;
    int total = 0;
    for (int p = 0; p < count; p++) total += parts[p].out;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < total; r++) {
        int p = 0, i = r;
        while (i >= parts[p].out) i -= parts[p++].out;
        const Part &P = parts[p];
        const uint8_t *row = P.W + (size_t)i * (size_t)(in / 256) * block_bytes(P.f);
        switch (P.f) {
        case Q4_K: rows_dot1_k<Q4_K, 1>(row, ng, &a, P.y + i); break;
        case Q5_K: rows_dot1_k<Q5_K, 1>(row, ng, &a, P.y + i); break;
        default: rows_dot1_k<Q6_K, 1>(row, ng, &a, P.y + i); break;
        }
    }
}

#endif

// y [n, out] (+)= W [out, in] @ x [n, in]^T, x given quantized in `a` (rows of in / 32
// groups), y's rows `stride` apart. Each weight row is decoded once into a thread's slice
// of `scratch` (int16 codes, scales, minimums: a few KB, in L1), then multiplied by the
// activation rows four at a time.
// one output column: the activation rows four at a time (four(i, v): rows i..i+3 into v)
// then one by one (one(i, v)), each sum stored (or added) at y[i * stride]
template <typename Four, typename One>
static inline void each_row(int n, float *y, size_t stride, bool add, Four four, One one) {
    float v[4];
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        four(i, v);
        for (int k = 0; k < 4; k++) {
            float *dst = y + (size_t)(i + k) * stride;
            *dst = add ? *dst + v[k] : v[k];
        }
    }
    for (; i < n; i++) {
        one(i, v);
        float *dst = y + (size_t)i * stride;
        *dst = add ? *dst + v[0] : v[0];
    }
}

static size_t decoded_bytes(int in) {
    const size_t ng = in / QK;
    const size_t b = (ng * QK * sizeof(int16_t) + ng * 3 * sizeof(float) + 63) / 64 * 64;
#ifdef INT8_PROMPTS
    return b > decoded8_bytes(in) ? b : decoded8_bytes(in);
#else
    return b;
#endif
}

// the activations' memory for n rows of up to `in` inputs, in either layout
static size_t acts_bytes_for(int n, int in) {
    size_t b = (acts_bytes((size_t)n * (in / QK)) + 63) / 64 * 64;  // scratch follows
#ifdef INT8_PROMPTS
    if ((size_t)n * acts1_stride(in) > b) b = (size_t)n * acts1_stride(in);
    return b > acts8_bytes(n, in) ? b : acts8_bytes(n, in);
#else
    return b;
#endif
}

#ifdef INT8_PROMPTS
// y [n, out] (+)= W [out, in] @ x [n, in]^T for a prompt: the activations quantized by
// quantize8 in `a`, each weight row decoded by decode_row8 into a thread's slice of scratch
template <int F>
static void product8(const uint8_t *W, int out, int in, const Acts8 &a, int n, float *y,
                     size_t stride, bool add, uint8_t *scratch, int threads) {
    const size_t rb = (size_t)(in / block_elems(F)) * block_bytes(F);
#pragma omp parallel num_threads(threads)
    {
        const Row8 w = row8_in(scratch + decoded_bytes(in) * omp_get_thread_num(), in, Unit<F>::S);
#pragma omp for schedule(static)
        for (int r = 0; r < out; r++) {
            decode_row8<F>(W + (size_t)r * rb, in, w);
            each_row(
                n, y + r, stride, add, [&](int i, float *v) { rows_dot8<F, 4>(w, in, a, i, v); },
                [&](int i, float *v) { rows_dot8<F, 1>(w, in, a, i, v); });
        }
    }
}

template <int F>
static void linear8(const uint8_t *W, int out, int in, const float *h, int n, uint8_t *acts,
                    float *y, size_t stride, bool add, uint8_t *scratch, int threads) {
    const Acts8 a = quantize8(h, n, in, Unit<F>::S, acts, threads);
    product8<F>(W, out, in, a, n, y, stride, add, scratch, threads);
}
#endif

// activation rows from which a product in Q4_0, Q5_0, Q8_0 or a K format reads them as
// int8 (0: never)
extern "C" int int8_rows() {
#ifdef INT8_PROMPTS
    return I8_ROWS;
#else
    return 0;
#endif
}

// up to how many activation rows (a decoding step, a verify pass) a product in a K format
// reads them as int8 in registers (0: never)
extern "C" int int8_decoding() {
#ifdef INT8_PROMPTS
    return FEW_ROWS;
#else
    return 0;
#endif
}

template <int F>
static void product_q(const uint8_t *W, int out, int in, const Acts &a, int n, float *y,
                      size_t stride, bool add, uint8_t *scratch, int threads) {
    const int ng = in / QK;
    const size_t rb = (size_t)(in / block_elems(F)) * block_bytes(F);
    const bool mins = F == Q4_1 || F == Q5_1 || F == Q4_K || F == Q5_K;
#ifdef ROW_DOTS
    if (n == 1 && (F == Q8_0 || F == Q5_0 || F == Q4_0 || F == Q4_K || F == Q5_K || F == Q6_K)) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int r = 0; r < out; r++) {
            const uint8_t *row = W + (size_t)r * rb;
            float v;
            if constexpr (F == Q4_K || F == Q5_K) v = row_dot_k4<F>(row, ng, a);
            else if constexpr (F == Q6_K) v = row_dot_q6k(row, ng, a);
            else v = row_dot_32<F>(row, ng, a);
            y[r] = add ? y[r] + v : v;
        }
        return;
    }
#endif
    if (n == 1) {  // a decoding step: each group decoded and used in registers
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int r = 0; r < out; r++) {
            const uint8_t *row = W + (size_t)r * rb;
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
            float m0 = 0.f, m1 = 0.f;
            KScales ks;
            for (int g = 0; g < ng; g++) {
                Group G;
                next_group<F>(row, g, ks, G);
                const __m256i *xv = (const __m256i *)(a.x + (size_t)g * QK);
                const float xd = a.d[g];
                if (F == Q6_K) {
                    const __m256i s0 = _mm256_madd_epi16(G.q0, _mm256_load_si256(xv));
                    const __m256i s1 = _mm256_madd_epi16(G.q1, _mm256_load_si256(xv + 1));
                    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(G.d0 * xd), acc0);
                    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_set1_ps(G.d1 * xd), acc1);
                    continue;
                }
#ifdef __AVX512VNNI__
                const __m256i s = _mm256_dpwssd_epi32(_mm256_madd_epi16(G.q0, _mm256_load_si256(xv)), G.q1,
                                                      _mm256_load_si256(xv + 1));
#else
                const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(G.q0, _mm256_load_si256(xv)),
                                                   _mm256_madd_epi16(G.q1, _mm256_load_si256(xv + 1)));
#endif
                const __m256 f = _mm256_cvtepi32_ps(s), dx = _mm256_set1_ps(G.d0 * xd);
                if (g & 1) {
                    acc1 = _mm256_fmadd_ps(f, dx, acc1);
                    if (mins) m1 += G.m * a.sum[g];
                } else {
                    acc0 = _mm256_fmadd_ps(f, dx, acc0);
                    if (mins) m0 += G.m * a.sum[g];
                }
            }
            const float v = hsum(_mm256_add_ps(acc0, acc1)) + m0 + m1;
            y[r] = add ? y[r] + v : v;
        }
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        int16_t *qb = (int16_t *)(scratch + decoded_bytes(in) * omp_get_thread_num());
        float *db = (float *)(qb + (size_t)ng * QK), *mb = db + 2 * (size_t)ng;
#pragma omp for schedule(static)
        for (int r = 0; r < out; r++) {
            const uint8_t *row = W + (size_t)r * rb;
#ifdef ROW_DOTS
            if constexpr (F == Q4_K || F == Q5_K || F == Q6_K) {
                decode_k_row<F>(row, ng, qb, db, mb);
                each_row(
                    n, y + r, stride, add, [&](int i, float *v) { rows_dot_k<F, 4>(qb, db, mb, ng, a, i, v); },
                    [&](int i, float *v) { rows_dot_k<F, 1>(qb, db, mb, ng, a, i, v); });
                continue;
            }
#endif
            KScales ks;
            for (int g = 0; g < ng; g++) {
                Group G;
                next_group<F>(row, g, ks, G);
                _mm256_store_si256((__m256i *)(qb + (size_t)g * QK), G.q0);
                _mm256_store_si256((__m256i *)(qb + (size_t)g * QK + 16), G.q1);
                db[2 * g] = G.d0;
                db[2 * g + 1] = G.d1;
                mb[g] = G.m;
            }
            each_row(
                n, y + r, stride, add, [&](int i, float *v) { rows_dot<F, 4>(qb, db, mb, ng, a, i, v); },
                [&](int i, float *v) { rows_dot<F, 1>(qb, db, mb, ng, a, i, v); });
        }
    }
}

// eight weights of a float row as float32
template <int F> static inline __m256 floats8(const uint8_t *row, int j) {
    if (F == F32) return _mm256_loadu_ps((const float *)row + j);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + j));
    if (F == F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));  // BF16
}

// the same product for float weights, over the float activations x [n, in]
template <int F>
static void product_f(const uint8_t *W, int out, int in, const float *x, int n, float *y,
                      size_t stride, bool add, int threads) {
    const size_t rb = (size_t)in * block_bytes(F);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < out; r++) {
        __m256 acc[MAXN];
        for (int i = 0; i < n; i++) acc[i] = _mm256_setzero_ps();
        const uint8_t *row = W + (size_t)r * rb;
        for (int j = 0; j < in; j += 8) {
            const __m256 w = floats8<F>(row, j);
            for (int i = 0; i < n; i++)
                acc[i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + (size_t)i * in + j), acc[i]);
        }
        for (int i = 0; i < n; i++) {
            float *dst = y + (size_t)i * stride + r;
            const float v = hsum(acc[i]);
            *dst = add ? *dst + v : v;
        }
    }
}

// y [n, out] (+)= h [n, in] @ W.T for W in format f (readable(f, in), n <= MAXN); quantized
// formats take h through `a` (quantized here). Columns of y are `stride` apart per row.
static void linear(int f, const uint8_t *W, int out, int in, const float *h, int n, const Acts &a,
                   float *y, size_t stride, bool add, uint8_t *scratch, int threads) {
#ifdef INT8_PROMPTS
    if (n <= FEW_ROWS && is_k(f)) {  // a decoding step, a verify pass
        uint8_t *acts = (uint8_t *)a.x;
        switch (f) {
        case Q4_K: product_few<Q4_K>(W, out, in, h, n, acts, y, stride, add, threads); return;
        case Q5_K: product_few<Q5_K>(W, out, in, h, n, acts, y, stride, add, threads); return;
        case Q6_K: product_few<Q6_K>(W, out, in, h, n, acts, y, stride, add, threads); return;
        }
    }
    if (n >= I8_ROWS) {  // Q4_1 and Q5_1 keep int16 (SmolLM2's and the int4 packing's)
        uint8_t *acts = (uint8_t *)a.x;
        switch (f) {
        case Q4_0: linear8<Q4_0>(W, out, in, h, n, acts, y, stride, add, scratch, threads); return;
        case Q5_0: linear8<Q5_0>(W, out, in, h, n, acts, y, stride, add, scratch, threads); return;
        case Q8_0: linear8<Q8_0>(W, out, in, h, n, acts, y, stride, add, scratch, threads); return;
        case Q4_K: linear8<Q4_K>(W, out, in, h, n, acts, y, stride, add, scratch, threads); return;
        case Q5_K: linear8<Q5_K>(W, out, in, h, n, acts, y, stride, add, scratch, threads); return;
        case Q6_K: linear8<Q6_K>(W, out, in, h, n, acts, y, stride, add, scratch, threads); return;
        }
    }
#endif
    if (is_k(f))
        quantize(h, n, in, a, 256, 16383.f);  // one scale a super-block: integer sums over it
    else if (!is_float(f))
        quantize(h, n, in, a);
    switch (f) {
    case F32: product_f<F32>(W, out, in, h, n, y, stride, add, threads); break;
    case F16: product_f<F16>(W, out, in, h, n, y, stride, add, threads); break;
    case BF16: product_f<BF16>(W, out, in, h, n, y, stride, add, threads); break;
    case Q4_0: product_q<Q4_0>(W, out, in, a, n, y, stride, add, scratch, threads); break;
    case Q4_1: product_q<Q4_1>(W, out, in, a, n, y, stride, add, scratch, threads); break;
    case Q5_0: product_q<Q5_0>(W, out, in, a, n, y, stride, add, scratch, threads); break;
    case Q5_1: product_q<Q5_1>(W, out, in, a, n, y, stride, add, scratch, threads); break;
    case Q8_0: product_q<Q8_0>(W, out, in, a, n, y, stride, add, scratch, threads); break;
    case Q4_K: product_q<Q4_K>(W, out, in, a, n, y, stride, add, scratch, threads); break;
    case Q5_K: product_q<Q5_K>(W, out, in, a, n, y, stride, add, scratch, threads); break;
    case Q6_K: product_q<Q6_K>(W, out, in, a, n, y, stride, add, scratch, threads); break;
    }
}

// y [n, out] = x [n, in] @ W.T, W rows of format f (GGUF blocks as the file holds them).
// Returns 0, or a negative code when the sizes or format cannot be taken or memory runs
// out (nothing written).
extern "C" int block_linear(int f, const uint8_t *W, int out, int in, const float *x, int n,
                            float *y, int threads) {
    if (n < 1 || n > MAXN || !readable(f, in) || threads < 1) return -1;
    const size_t count = (size_t)n * (in / QK);
    const size_t acts = acts_bytes_for(n, in);
    uint8_t *mem = (uint8_t *)aligned_alloc(64, acts + decoded_bytes(in) * threads);
    if (!mem) return -2;
    linear(f, W, out, in, x, n, acts_in(mem, count), y, out, false, mem + acts, threads);
    free(mem);
    return 0;
}

// y [n, out] = x [n, in] @ W.T for the project's own int4 blocks (the Q4_1 layout)
extern "C" int q4_linear(const uint8_t *blocks, int out, int in, const float *x, int n, float *y,
                         int threads) {
    return block_linear(Q4_1, blocks, out, in, x, n, y, threads);
}

// rows[i] of W (format f, `in` inputs) as float32 into out [n, in]: what an embedding
// lookup reads. Returns 0, or -1 for sizes it cannot take.
extern "C" int block_rows(int f, const uint8_t *W, int in, const long long *rows, int n, float *out) {
    if (!readable(f, in)) return -1;
    const size_t rb = (size_t)gguf_row_bytes(f, in);
    for (int i = 0; i < n; i++) {
        const uint8_t *row = W + (size_t)rows[i] * rb;
        float *o = out + (size_t)i * in;
        if (is_float(f)) {
            for (int j = 0; j < in; j += 8) {
                __m256 v;
                if (f == F32) v = floats8<F32>(row, j);
                else if (f == F16) v = floats8<F16>(row, j);
                else v = floats8<BF16>(row, j);
                _mm256_storeu_ps(o + j, v);
            }
            continue;
        }
        for (int g = 0; g < in / QK; g++) {
            Group G;
            switch (f) {
            case Q4_0: group<Q4_0>(row, g, G); break;
            case Q4_1: group<Q4_1>(row, g, G); break;
            case Q5_0: group<Q5_0>(row, g, G); break;
            case Q5_1: group<Q5_1>(row, g, G); break;
            case Q8_0: group<Q8_0>(row, g, G); break;
            case Q4_K: group<Q4_K>(row, g, G); break;
            case Q5_K: group<Q5_K>(row, g, G); break;
            case Q6_K: group<Q6_K>(row, g, G); break;
            }
            int16_t q[32];
            _mm256_storeu_si256((__m256i *)q, G.q0);
            _mm256_storeu_si256((__m256i *)(q + 16), G.q1);
            for (int j = 0; j < 32; j++) o[g * QK + j] = (j < 16 ? G.d0 : G.d1) * q[j] + G.m;
        }
    }
    return 0;
}

extern "C" int attend_max_dim() { return MAXDIM; }

static bool attend_fits(int groups, int dim) {
    return groups >= 1 && groups <= MAXG && dim % 8 == 0 && dim > 0 && dim <= MAXDIM;
}

// out [kv * groups, dim] = softmax(q k^T * scale) v for one query row per head, over the
// first `len` positions of keys/values [kv, cap, dim]; query head h*groups+g reads key
// head h. dim a multiple of 8 up to MAXDIM, groups up to MAXG. Returns 0, or a negative
// code (nothing written).
extern "C" int attend(const float *q, const float *keys, const float *values, int kv, int groups,
           int cap, int len, int dim, float scale, float *out, int threads) {
    if (!attend_fits(groups, dim) || len < 1 || len > cap) return -1;
    float *scores = (float *)malloc(sizeof(float) * (size_t)kv * groups * len);
    if (!scores) return -2;
    const int lanes = dim / 8;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int h = 0; h < kv; h++) {
        const float *K = keys + (size_t)h * cap * dim;
        const float *V = values + (size_t)h * cap * dim;
        float *S = scores + (size_t)h * groups * len;
        const float *Q = q + (size_t)h * groups * dim;
        for (int t = 0; t < len; t++) {
            const float *k = K + (size_t)t * dim;
            for (int g = 0; g < groups; g++) {
                const float *qg = Q + (size_t)g * dim;
                __m256 a = _mm256_setzero_ps();
                for (int c = 0; c < lanes; c++)
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(qg + c * 8), _mm256_loadu_ps(k + c * 8), a);
                __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
                s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                s = _mm_add_ss(s, _mm_movehdup_ps(s));
                S[(size_t)g * len + t] = _mm_cvtss_f32(s) * scale;
            }
        }
        for (int g = 0; g < groups; g++) {
            float *Sg = S + (size_t)g * len;
            float top = -INFINITY;
            for (int t = 0; t < len; t++) top = fmaxf(top, Sg[t]);
            float sum = 0.f;
            for (int t = 0; t < len; t++) {
                Sg[t] = expf(Sg[t] - top);
                sum += Sg[t];
            }
            const float inv = 1.f / sum;
            for (int t = 0; t < len; t++) Sg[t] *= inv;
        }
        __m256 acc[MAXG * (MAXDIM / 8)];
        for (int j = 0; j < groups * lanes; j++) acc[j] = _mm256_setzero_ps();
        for (int t = 0; t < len; t++) {
            const float *v = V + (size_t)t * dim;
            for (int g = 0; g < groups; g++) {
                const __m256 p = _mm256_set1_ps(S[(size_t)g * len + t]);
                for (int c = 0; c < lanes; c++)
                    acc[g * lanes + c] =
                        _mm256_fmadd_ps(p, _mm256_loadu_ps(v + c * 8), acc[g * lanes + c]);
            }
        }
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < lanes; c++)
                _mm256_storeu_ps(out + ((size_t)h * groups + g) * dim + c * 8, acc[g * lanes + c]);
    }
    free(scores);
    return 0;
}


// e^x for x <= 0 (softmax's exponents after subtracting the maximum), eight at once:
// 2^k * e^r with k = round(x / ln 2), |r| <= ln 2 / 2, e^r by its Taylor polynomial to
// degree 6 (relative error under 2e-7, float32's rounding); below -87 it is 0
static inline __m256 exp_neg(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

#define CHUNK 64

// Attention of n new tokens over a float16 key/value cache [kv, cap, dim]: the query of
// row i (heads [kv * groups, dim], rows qstride apart) is at position past + i and sees
// keys 0..past + i. The keys are cut into chunks of CHUNK, and each (key/value head,
// chunk) is one piece of work for the threads: its keys and values are made float32 once
// for every row and query head that reads them, each query's softmax over the chunk is
// kept as its maximum, sum and weighted values, and the chunks are merged after
// (flash-decoding). Returns 0, or -2 when memory runs out.
static int attend_rows(const float *q, size_t qstride, const uint16_t *K, const uint16_t *V,
                       int kv, int groups, int cap, int past, int n, int dim, float scale,
                       float *out, size_t ostride, int threads) {
    const int len = past + n, chunks = (len + CHUNK - 1) / CHUNK, items = kv * chunks;
    const int G = n * groups, lanes = dim / 8;
    const size_t each = (size_t)dim + 2;  // max, sum, weighted values
    float *part = (float *)malloc(sizeof(float) * (size_t)items * G * each);
    if (!part) return -2;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        float *kf = (float *)aligned_alloc(32, sizeof(float) * CHUNK * dim * 2 + 32 * CHUNK);
        float *vf = kf + CHUNK * dim, *sc = vf + CHUNK * dim;
        if (!kf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int it = 0; it < items; it++) {
            if (!kf) continue;
            const int h = it / chunks, t0 = (it % chunks) * CHUNK;
            const int t1 = t0 + CHUNK < len ? t0 + CHUNK : len;
            const uint16_t *Kh = K + ((size_t)h * cap + t0) * dim;
            const uint16_t *Vh = V + ((size_t)h * cap + t0) * dim;
            for (size_t j = 0; j < (size_t)(t1 - t0) * dim; j += 8) {
                _mm256_store_ps(kf + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(Kh + j))));
                _mm256_store_ps(vf + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(Vh + j))));
            }
            for (int v = 0; v < G; v++) {
                const int i = v / groups, g = v % groups;
                const float *qv = q + (size_t)i * qstride + ((size_t)h * groups + g) * dim;
                float *P = part + ((size_t)it * G + v) * each;
                const int sees = past + i + 1 < t1 ? past + i + 1 : t1;  // keys t0..sees-1
                if (sees <= t0) {
                    P[0] = -INFINITY;
                    P[1] = 0.f;
                    memset(P + 2, 0, sizeof(float) * dim);
                    continue;
                }
                const int m = sees - t0;
                float top = -INFINITY;
                for (int t = 0; t < m; t++) {
                    const float *k = kf + (size_t)t * dim;
                    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
                    int c = 0;
                    for (; c + 1 < lanes; c += 2) {
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qv + c * 8), _mm256_load_ps(k + c * 8), a0);
                        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qv + c * 8 + 8), _mm256_load_ps(k + c * 8 + 8), a1);
                    }
                    if (c < lanes)
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qv + c * 8), _mm256_load_ps(k + c * 8), a0);
                    sc[t] = hsum(_mm256_add_ps(a0, a1)) * scale;
                    top = fmaxf(top, sc[t]);
                }
                for (int t = m; t % 8; t++) sc[t] = -INFINITY;
                __m256 sum = _mm256_setzero_ps();
                const __m256 mx = _mm256_set1_ps(top);
                for (int t = 0; t < m; t += 8) {
                    const __m256 e = exp_neg(_mm256_sub_ps(_mm256_load_ps(sc + t), mx));
                    _mm256_store_ps(sc + t, e);
                    sum = _mm256_add_ps(sum, e);
                }
                P[0] = top;
                P[1] = hsum(sum);
                float *acc = P + 2;
                int c0 = 0;
                for (; c0 + 8 <= lanes; c0 += 8) {  // eight lanes of the values at a time
                    __m256 a[8];
                    for (int c = 0; c < 8; c++) a[c] = _mm256_setzero_ps();
                    for (int t = 0; t < m; t++) {
                        const __m256 pt = _mm256_set1_ps(sc[t]);
                        const float *vv = vf + (size_t)t * dim + c0 * 8;
                        for (int c = 0; c < 8; c++) a[c] = _mm256_fmadd_ps(pt, _mm256_load_ps(vv + c * 8), a[c]);
                    }
                    for (int c = 0; c < 8; c++) _mm256_storeu_ps(acc + (c0 + c) * 8, a[c]);
                }
                for (; c0 < lanes; c0++) {
                    __m256 a = _mm256_setzero_ps();
                    for (int t = 0; t < m; t++)
                        a = _mm256_fmadd_ps(_mm256_set1_ps(sc[t]), _mm256_load_ps(vf + (size_t)t * dim + c0 * 8), a);
                    _mm256_storeu_ps(acc + c0 * 8, a);
                }
            }
        }
        free(kf);
    }
    if (!failed) {
        for (int h = 0; h < kv; h++)
            for (int v = 0; v < G; v++) {
                const int i = v / groups, g = v % groups;
                float top = -INFINITY;
                for (int c = 0; c < chunks; c++)
                    top = fmaxf(top, part[((size_t)(h * chunks + c) * G + v) * each]);
                float total = 0.f;
                float *o = out + (size_t)i * ostride + ((size_t)h * groups + g) * dim;
                memset(o, 0, sizeof(float) * dim);
                for (int c = 0; c < chunks; c++) {
                    const float *P = part + ((size_t)(h * chunks + c) * G + v) * each;
                    if (P[1] == 0.f) continue;
                    const float w = expf(P[0] - top);
                    total += w * P[1];
                    for (int j = 0; j < dim; j++) o[j] += w * P[2 + j];
                }
                const float inv = 1.f / total;
                for (int j = 0; j < dim; j++) o[j] *= inv;
            }
    }
    free(part);
    return failed ? -2 : 0;
}

static void rms_norm(const float *x, const float *w, int n, int dim, float eps, float *out, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n >= 4)
    for (int i = 0; i < n; i++) {
        const float *v = x + (size_t)i * dim;
        double ss = 0.;
        for (int j = 0; j < dim; j++) ss += (double)v[j] * v[j];
        const float r = 1.f / sqrtf((float)(ss / dim) + eps);
        for (int j = 0; j < dim; j++) out[(size_t)i * dim + j] = w[j] * (v[j] * r);
    }
}

// the rotary embedding of one head's vector at one position (transformers' rotate_half)
static void rotate(float *v, const float *c, const float *s, int dim) {
    const int half = dim / 2;
    for (int j = 0; j < half; j++) {
        const float a = v[j], b = v[j + half];
        v[j] = a * c[j] - b * s[j];
        v[j + half] = b * c[j + half] + a * s[j + half];
    }
}

// o = silu(g) * u for one row: g [inter] and u, right after it, [inter]
static void silu_times(const float *g, float *o, int inter) {
    const float *u = g + inter;
    int j = 0;
    const __m256 one = _mm256_set1_ps(1.f), sign = _mm256_set1_ps(-0.f);
    for (; j + 8 <= inter; j += 8) {
        const __m256 v = _mm256_loadu_ps(g + j);
        const __m256 e = exp_neg(_mm256_or_ps(v, sign));  // exp(-|v|), never above 1
        const __m256 r = _mm256_div_ps(one, _mm256_add_ps(one, e));
        // sigmoid(v): 1 / (1 + e) where v >= 0, e / (1 + e) below
        const __m256 sig = _mm256_blendv_ps(r, _mm256_mul_ps(e, r), v);
        _mm256_storeu_ps(o + j, _mm256_mul_ps(_mm256_mul_ps(v, sig), _mm256_loadu_ps(u + j)));
    }
    for (; j < inter; j++) o[j] = g[j] / (1.f + expf(-g[j])) * u[j];
}

enum { IN_NORM, POST_NORM, Q, K, V, Q_BIAS, K_BIAS, V_BIAS, O, GATE, UP, DOWN, PER_LAYER };
enum { FQ, FK, FV, FO, FGATE, FUP, FDOWN, FORMATS };

// Every layer of a Llama/Qwen2 decoder over n new tokens (n <= MAXN) at positions past..
// past + n - 1: x [n, hidden] (the embedded tokens) becomes the last layer's output, and
// each layer's keys and values are written into its float16 cache [kv, cap, dim] at
// those positions. The weights of layer l are ptrs[l * PER_LAYER + ...]: the two norms'
// float weights; the q, k and v projections and their float biases (or NULL); the output
// projection; gate, up and down (no biases). Their formats are fmts[l * FORMATS + ...]
// (GGUF type numbers). Fused weights are taken too: K and V NULL when Q holds the q, k and
// v rows together (and Q_BIAS their biases), UP NULL when GATE holds gate's and up's rows.
// sizes: layers, hidden, heads, kv heads, head dim, intermediate size. cos/sin: the rotary
// tables [cap, dim]. The activation is SiLU. Returns 0, or a negative code (-1: sizes or
// formats it cannot take, nothing written; -2: out of memory).
extern "C" int decode_layers(const void *const *ptrs, const int *fmts, const int *sizes, float eps,
                             float scale, float *x, int n, int past, const float *cos,
                             const float *sin, uint16_t *const *keys, uint16_t *const *values,
                             int cap, int threads) {
    const int layers = sizes[0], hidden = sizes[1], heads = sizes[2], kv = sizes[3],
              dim = sizes[4], inter = sizes[5];
    if (n < 1 || n > MAXN || past < 0 || past + n > cap || kv < 1 || heads % kv ||
        !attend_fits(heads / kv, dim))
        return -1;
    const int groups = heads / kv, qd = heads * dim, kd = kv * dim, width = qd + 2 * kd;
    for (int l = 0; l < layers; l++) {
        const int *f = fmts + (size_t)l * FORMATS;
        if (!readable(f[FQ], hidden) || !readable(f[FO], qd) || !readable(f[FGATE], hidden) ||
            !readable(f[FDOWN], inter))
            return -1;
        const void *const *p = ptrs + (size_t)l * PER_LAYER;
        if ((p[K] && !(readable(f[FK], hidden) && readable(f[FV], hidden) && p[V])) ||
            (p[UP] && !readable(f[FUP], hidden)))
            return -1;
    }
    const int widest = hidden > inter ? (hidden > qd ? hidden : qd) : (inter > qd ? inter : qd);
    const size_t act_blocks = (size_t)n * widest / QK;
    const size_t floats = (size_t)n * (hidden + width + qd + 2 * inter + inter);
    if (threads < 1) return -1;
    const size_t acts = acts_bytes_for(n, widest);
    uint8_t *mem = (uint8_t *)aligned_alloc(64, acts + decoded_bytes(widest) * threads);
    uint8_t *scratch = mem + acts;
    float *buf = (float *)malloc(sizeof(float) * floats);
    if (!mem || !buf) {
        free(mem);
        free(buf);
        return -2;
    }
    const Acts a = acts_in(mem, act_blocks);
    float *h = buf, *qkv = h + (size_t)n * hidden, *att = qkv + (size_t)n * width,
          *gu = att + (size_t)n * qd, *act = gu + (size_t)n * 2 * inter;
    for (int l = 0; l < layers; l++) {
        const void *const *p = ptrs + (size_t)l * PER_LAYER;
        const int *f = fmts + (size_t)l * FORMATS;
        uint16_t *Kc = keys[l], *Vc = values[l];
        rms_norm(x, (const float *)p[IN_NORM], n, hidden, eps, h, threads);
        bool together = false;  // a decoding step's q, k, v (and gate, up) in one parallel loop
#ifdef INT8_PROMPTS
        together = n == 1 && p[K] && p[UP] && is_k(f[FQ]) && is_k(f[FK]) && is_k(f[FV]) &&
                   is_k(f[FGATE]) && is_k(f[FUP]);
#endif
        if (together) {
#ifdef INT8_PROMPTS
            const Part parts[3] = {{(const uint8_t *)p[Q], f[FQ], qd, qkv},
                                   {(const uint8_t *)p[K], f[FK], kd, qkv + qd},
                                   {(const uint8_t *)p[V], f[FV], kd, qkv + qd + kd}};
            product1_parts(parts, 3, hidden, h, (uint8_t *)a.x, threads);
#endif
        } else if (p[K]) {
            linear(f[FQ], (const uint8_t *)p[Q], qd, hidden, h, n, a, qkv, width, false, scratch, threads);
            linear(f[FK], (const uint8_t *)p[K], kd, hidden, h, n, a, qkv + qd, width, false, scratch, threads);
            linear(f[FV], (const uint8_t *)p[V], kd, hidden, h, n, a, qkv + qd + kd, width, false, scratch, threads);
        } else {
            linear(f[FQ], (const uint8_t *)p[Q], width, hidden, h, n, a, qkv, width, false, scratch, threads);
        }
        for (int i = 0; i < n; i++) {
            float *row = qkv + (size_t)i * width;
            const float *bq = (const float *)p[Q_BIAS], *bk = (const float *)p[K_BIAS],
                        *bv = (const float *)p[V_BIAS];
            if (bq && !p[K])
                for (int j = 0; j < width; j++) row[j] += bq[j];
            else {
                if (bq)
                    for (int j = 0; j < qd; j++) row[j] += bq[j];
                if (bk)
                    for (int j = 0; j < kd; j++) row[qd + j] += bk[j];
                if (bv)
                    for (int j = 0; j < kd; j++) row[qd + kd + j] += bv[j];
            }
            const size_t pos = (size_t)past + i;
            for (int hd = 0; hd < heads + kv; hd++)
                rotate(row + (size_t)hd * dim, cos + pos * dim, sin + pos * dim, dim);
            for (int hd = 0; hd < kv; hd++)
                for (int j = 0; j < dim; j += 8) {
                    const int nearest = _MM_FROUND_TO_NEAREST_INT;
                    _mm_storeu_si128((__m128i *)(Kc + ((size_t)hd * cap + pos) * dim + j),
                                     _mm256_cvtps_ph(_mm256_loadu_ps(row + qd + (size_t)hd * dim + j), nearest));
                    _mm_storeu_si128((__m128i *)(Vc + ((size_t)hd * cap + pos) * dim + j),
                                     _mm256_cvtps_ph(_mm256_loadu_ps(row + qd + kd + (size_t)hd * dim + j), nearest));
                }
        }
        if (attend_rows(qkv, width, Kc, Vc, kv, groups, cap, past, n, dim, scale, att, qd, threads)) {
            free(mem);
            free(buf);
            return -2;
        }
        linear(f[FO], (const uint8_t *)p[O], hidden, qd, att, n, a, x, hidden, true, scratch, threads);
        rms_norm(x, (const float *)p[POST_NORM], n, hidden, eps, h, threads);
        if (together) {
#ifdef INT8_PROMPTS
            const Part parts[2] = {{(const uint8_t *)p[GATE], f[FGATE], inter, gu},
                                   {(const uint8_t *)p[UP], f[FUP], inter, gu + inter}};
            product1_parts(parts, 2, hidden, h, (uint8_t *)a.x, threads);
#endif
        } else if (p[UP]) {
            linear(f[FGATE], (const uint8_t *)p[GATE], inter, hidden, h, n, a, gu, 2 * inter, false, scratch, threads);
            linear(f[FUP], (const uint8_t *)p[UP], inter, hidden, h, n, a, gu + inter, 2 * inter, false, scratch, threads);
        } else {
            linear(f[FGATE], (const uint8_t *)p[GATE], 2 * inter, hidden, h, n, a, gu, 2 * inter, false, scratch, threads);
        }
#pragma omp parallel for num_threads(threads) schedule(static) if (n >= 4)
        for (int i = 0; i < n; i++) silu_times(gu + (size_t)i * 2 * inter, act + (size_t)i * inter, inter);
        linear(f[FDOWN], (const uint8_t *)p[DOWN], hidden, inter, act, n, a, x, hidden, true, scratch, threads);
    }
    free(mem);
    free(buf);
    return 0;
}
