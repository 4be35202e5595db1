// The project's CPU kernels, built by native.py with the system's C++ compiler.
//
// q4_linear: int4 weights (blocks of 32 inputs: w = q * d + m, q in 0..15, d and m float16: a GGUF
// Q4_1 block, stored as it is, 20 bytes, so a row is read as one stream) multiplied by a
// few rows of activations held as int16 per block of 32 (x = xq * xd). The block's dot
// product is integer arithmetic:
//   sum_j w_j x_j = d * xd * sum_j q_j xq_j + m * sum_j x_j
// and AVX2 multiplies 16 pairs of 16-bit values and adds each pair in one instruction
// (vpmaddwd).
//
// attend: one new token's attention over a float32 key/value cache, every query head of
// a key/value head reading that head's keys once (grouped-query attention).
//
// decode_layers: every layer of a Llama/Qwen2 decoder over a few new tokens (nativelayers.py),
// so a pass makes one call instead of some 700 PyTorch ones: q4_linear's products, and
// attention over a float16 KV cache cut into chunks of keys that the threads share
// (attend_rows).
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QK 32
#define MAXN 16
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

static void quantize(const float *x, int n, int in, const Acts &a) {
    const size_t count = (size_t)n * (in / QK);
    const __m256 sign = _mm256_set1_ps(-0.f);
    for (size_t k = 0; k < count; k++) {
        const float *v = x + k * QK;  // rows are contiguous: block k of the flat array
        const __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8),
                     v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
        const __m256 m = _mm256_max_ps(
            _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
            _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        const float amax = hmax(m);
        const __m256 inv = _mm256_set1_ps(amax > 0.f ? 32767.f / amax : 0.f);
        const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inv));
        const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inv));
        const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inv));
        const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inv));
        _mm256_store_si256((__m256i *)(a.x + k * QK), _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xD8));
        _mm256_store_si256((__m256i *)(a.x + k * QK + 16), _mm256_permute4x64_epi64(_mm256_packs_epi32(i2, i3), 0xD8));
        a.d[k] = amax / 32767.f;
        a.sum[k] = hsum(_mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3)));
    }
}

static void product(const uint8_t *blocks, int out, int nb, const Acts &a, int n, float *y,
                      size_t stride, bool add, int threads) {
    const __m128i low = _mm_set1_epi8(0x0F);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < out; r++) {
        __m256 acc[MAXN];
        float macc[MAXN];
        for (int i = 0; i < n; i++) {
            acc[i] = _mm256_setzero_ps();
            macc[i] = 0.f;
        }
        const uint8_t *row = blocks + (size_t)r * nb * 20;
        for (int b = 0; b < nb; b++) {
            const uint8_t *block = row + (size_t)b * 20;
            const __m128i raw = _mm_loadu_si128((const __m128i *)(block + 4));
            const __m256i q0 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, low));
            const __m256i q1 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), low));
            uint16_t bits[2];
            memcpy(bits, block, sizeof bits);
            const __m256 db = _mm256_set1_ps(_cvtsh_ss(bits[0]));
            const float mb = _cvtsh_ss(bits[1]);
            for (int i = 0; i < n; i++) {
                const size_t k = (size_t)i * nb + b;
                const __m256i *xv = (const __m256i *)(a.x + k * QK);
                const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(q0, _mm256_load_si256(xv)),
                                                   _mm256_madd_epi16(q1, _mm256_load_si256(xv + 1)));
                acc[i] = _mm256_fmadd_ps(db, _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(a.d[k])), acc[i]);
                macc[i] += mb * a.sum[k];
            }
        }
        for (int i = 0; i < n; i++) {
            float *dst = y + (size_t)i * stride + r;
            const float v = hsum(acc[i]) + macc[i];
            *dst = add ? *dst + v : v;
        }
    }
}

// y [n, out] (+)= h [n, in] @ W.T for block weights, h quantized into `a` first
static void linear(const uint8_t *blocks, int out, int in, const float *h, int n, const Acts &a,
                   float *y, bool add, int threads) {
    quantize(h, n, in, a);
    product(blocks, out, in / QK, a, n, y, out, add, threads);
}

// y [n, out] = x [n, in] @ W.T, W given as blocks [out, in/32, 20]: d and m (float16
// bits), then 16 bytes of codes (byte j: element j in the low nibble, element j + 16 in
// the high one). Returns 0, or a negative code when n or in is out of range or memory
// runs out (nothing written).
extern "C" int q4_linear(const uint8_t *blocks, int out, int in, const float *x, int n, float *y,
              int threads) {
    if (n < 1 || n > MAXN || in % QK != 0 || in <= 0) return -1;
    const size_t count = (size_t)n * (in / QK);
    uint8_t *mem = (uint8_t *)aligned_alloc(32, acts_bytes(count));
    if (!mem) return -2;
    linear(blocks, out, in, x, n, acts_in(mem, count), y, false, threads);
    free(mem);
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

static void rms_norm(const float *x, const float *w, int n, int dim, float eps, float *out) {
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

enum { IN_NORM, POST_NORM, QKV, QKV_BIAS, O, GATE_UP, DOWN, PER_LAYER };

// Every layer of a Llama/Qwen2 decoder over n new tokens (n <= MAXN) at positions past..
// past + n - 1: x [n, hidden] (the embedded tokens) becomes the last layer's output, and
// each layer's keys and values are written into its float16 cache [kv, cap, dim] at
// those positions. The weights of layer l are ptrs[l * PER_LAYER + ...]: the two norms' float
// weights, the fused q/k/v projection's blocks and float bias (or NULL), the output
// projection's, the fused gate/up projection's and the down projection's blocks (no
// biases). sizes: layers, hidden, heads, kv heads, head dim, intermediate size. cos/sin:
// the rotary tables [cap, dim]. The activation is SiLU. Returns 0, or a negative code
// (-1: sizes it cannot take, nothing written; -2: out of memory).
extern "C" int decode_layers(const void *const *ptrs, const int *sizes, float eps, float scale, float *x,
                  int n, int past, const float *cos, const float *sin, uint16_t *const *keys,
                  uint16_t *const *values, int cap, int threads) {
    const int layers = sizes[0], hidden = sizes[1], heads = sizes[2], kv = sizes[3],
              dim = sizes[4], inter = sizes[5];
    if (n < 1 || n > MAXN || past < 0 || past + n > cap || kv < 1 || heads % kv ||
        !attend_fits(heads / kv, dim) || hidden % QK || inter % QK || (heads * dim) % QK)
        return -1;
    const int groups = heads / kv, qd = heads * dim, kd = kv * dim, width = qd + 2 * kd;
    const int widest = hidden > inter ? (hidden > qd ? hidden : qd) : (inter > qd ? inter : qd);
    const size_t act_blocks = (size_t)n * widest / QK;
    const size_t floats = (size_t)n * (hidden + width + qd + 2 * inter + inter);
    uint8_t *mem = (uint8_t *)aligned_alloc(32, acts_bytes(act_blocks));
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
        uint16_t *K = keys[l], *V = values[l];
        rms_norm(x, (const float *)p[IN_NORM], n, hidden, eps, h);
        linear((const uint8_t *)p[QKV], width, hidden, h, n, a, qkv, false, threads);
        for (int i = 0; i < n; i++) {
            float *row = qkv + (size_t)i * width;
            const float *bias = (const float *)p[QKV_BIAS];
            if (bias)
                for (int j = 0; j < width; j++) row[j] += bias[j];
            const size_t pos = (size_t)past + i;
            for (int hd = 0; hd < heads + kv; hd++)
                rotate(row + (size_t)hd * dim, cos + pos * dim, sin + pos * dim, dim);
            for (int hd = 0; hd < kv; hd++)
                for (int j = 0; j < dim; j += 8) {
                    const int nearest = _MM_FROUND_TO_NEAREST_INT;
                    _mm_storeu_si128((__m128i *)(K + ((size_t)hd * cap + pos) * dim + j),
                                     _mm256_cvtps_ph(_mm256_loadu_ps(row + qd + (size_t)hd * dim + j), nearest));
                    _mm_storeu_si128((__m128i *)(V + ((size_t)hd * cap + pos) * dim + j),
                                     _mm256_cvtps_ph(_mm256_loadu_ps(row + qd + kd + (size_t)hd * dim + j), nearest));
                }
        }
        if (attend_rows(qkv, width, K, V, kv, groups, cap, past, n, dim, scale, att, qd, threads)) {
            free(mem);
            free(buf);
            return -2;
        }
        linear((const uint8_t *)p[O], hidden, qd, att, n, a, x, true, threads);
        rms_norm(x, (const float *)p[POST_NORM], n, hidden, eps, h);
        linear((const uint8_t *)p[GATE_UP], 2 * inter, hidden, h, n, a, gu, false, threads);
        for (int i = 0; i < n; i++) {
            const float *g = gu + (size_t)i * 2 * inter, *u = g + inter;
            float *o = act + (size_t)i * inter;
            for (int j = 0; j < inter; j++) o[j] = g[j] / (1.f + expf(-g[j])) * u[j];
        }
        linear((const uint8_t *)p[DOWN], hidden, inter, act, n, a, x, true, threads);
    }
    free(mem);
    free(buf);
    return 0;
}
