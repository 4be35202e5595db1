// The project's CPU kernels, built by native.py with the system's C++ compiler.
//
// q4_linear: int4 weights (blocks of 32 inputs: w = q * d + m, q in 0..15, d and m float16: a GGUF
// Q4_1 block, stored as it is, 20 bytes, so a row is read as one stream) multiplied by a
// few rows of activations held as int8 per block of 32 (x = xq * xd, twice: see below).
// The block's dot product is integer arithmetic:
//   sum_j w_j x_j = d * xd * sum_j q_j xq_j + m * sum_j x_j
// and AVX2 multiplies 32 unsigned 4-bit by 32 signed 8-bit values in two instructions
// (vpmaddubsw, vpmaddwd).
//
// attend: one new token's attention over a float32 key/value cache, every query head of
// a key/value head reading that head's keys once (grouped-query attention).
//
// decode_layers: every layer of a Llama/Qwen2 decoder over a few new tokens, built of the
// two above (nativelayers.py), so a pass makes one call instead of some 700 PyTorch ones.
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QK 32
#define MAXN 16
#define MAXDIM 256
#define MAXG 16

extern "C" {

int q4_block() { return QK; }
int q4_max_rows() { return MAXN; }

// Activations of n rows as blocks of 32, each as two int8 parts: x ~ hi * d + lo * ld,
// where the low part is what rounding the high one left (|x - hi * d| <= d / 2, ld = d /
// 254): about 15 bits of precision for the price of a second integer dot product, which
// is cheap here (decoding waits on reading the weights, not on arithmetic). sum: each
// block's sum of x, the factor of the weights' minimum.
struct Acts {
    int8_t *hi, *lo;
    float *d, *ld, *sum;
};

static size_t acts_bytes(size_t blocks) {
    return (blocks * (2 * QK + 3 * sizeof(float)) + 31) / 32 * 32;  // aligned_alloc's multiple
}

// views of `mem` (32-byte aligned, acts_bytes(blocks) long) for `blocks` blocks
static Acts acts_in(uint8_t *mem, size_t blocks) {
    Acts a;
    a.hi = (int8_t *)mem;
    a.lo = a.hi + blocks * QK;
    a.d = (float *)(a.lo + blocks * QK);
    a.ld = a.d + blocks;
    a.sum = a.ld + blocks;
    return a;
}

static void quantize(const float *x, int n, int in, const Acts &a) {
    const int nb = in / QK;
    const size_t count = (size_t)n * nb;
    for (size_t k = 0; k < count; k++) {
        const size_t i = k / nb, b = k % nb;
        const float *v = x + i * in + b * QK;
        float amax = 0.f, sum = 0.f;
        for (int j = 0; j < QK; j++) {
            amax = fmaxf(amax, fabsf(v[j]));
            sum += v[j];
        }
        const float scale = amax / 127.f, inv = amax > 0.f ? 127.f / amax : 0.f;
        const float fine = scale / 254.f, inv_fine = amax > 0.f ? 254.f / scale : 0.f;
        int8_t *hi = a.hi + k * QK;
        int8_t *lo = a.lo + k * QK;
        for (int j = 0; j < QK; j++) {
            const int t = (int)lrintf(v[j] * inv);
            hi[j] = (int8_t)t;
            const int u = (int)lrintf((v[j] - (float)t * scale) * inv_fine);
            lo[j] = (int8_t)(u > 127 ? 127 : (u < -127 ? -127 : u));
        }
        a.d[k] = scale;
        a.ld[k] = fine;
        a.sum[k] = sum;
    }
}

// y[i * stride + r] (+)= row r of the blocks [out, nb, 20] . activation row i, rows split
// over `threads`
static void product(const uint8_t *blocks, int out, int nb, const Acts &a, int n, float *y,
                    size_t stride, bool add, int threads) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
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
            const __m256i q =
                _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low);
            uint16_t bits[2];
            memcpy(bits, block, sizeof bits);
            const float db = _cvtsh_ss(bits[0]);
            const float mb = _cvtsh_ss(bits[1]);
            for (int i = 0; i < n; i++) {
                const size_t k = (size_t)i * nb + b;
                const __m256i xh = _mm256_load_si256((const __m256i *)(a.hi + k * QK));
                const __m256i xl = _mm256_load_si256((const __m256i *)(a.lo + k * QK));
                const __m256 ph = _mm256_cvtepi32_ps(
                    _mm256_madd_epi16(_mm256_maddubs_epi16(q, xh), ones));
                const __m256 pl = _mm256_cvtepi32_ps(
                    _mm256_madd_epi16(_mm256_maddubs_epi16(q, xl), ones));
                const __m256 part = _mm256_fmadd_ps(
                    pl, _mm256_set1_ps(a.ld[k]), _mm256_mul_ps(ph, _mm256_set1_ps(a.d[k])));
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(db), part, acc[i]);
                macc[i] += mb * a.sum[k];
            }
        }
        for (int i = 0; i < n; i++) {
            __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1));
            s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            s = _mm_add_ss(s, _mm_movehdup_ps(s));
            float *dst = y + (size_t)i * stride + r;
            const float v = _mm_cvtss_f32(s) + macc[i];
            *dst = add ? *dst + v : v;
        }
    }
}

// y [n, out] = x [n, in] @ W.T, W given as blocks [out, in/32, 20]: d and m (float16
// bits), then 16 bytes of codes (byte j: element j in the low nibble, element j + 16 in
// the high one). Returns 0, or a negative code when n or in is out of range or memory
// runs out (nothing written).
int q4_linear(const uint8_t *blocks, int out, int in, const float *x, int n, float *y,
              int threads) {
    if (n < 1 || n > MAXN || in % QK != 0 || in <= 0) return -1;
    const int nb = in / QK;
    const size_t count = (size_t)n * nb;
    uint8_t *mem = (uint8_t *)aligned_alloc(32, acts_bytes(count));
    if (!mem) return -2;
    const Acts a = acts_in(mem, count);
    quantize(x, n, in, a);
    product(blocks, out, nb, a, n, y, out, false, threads);
    free(mem);
    return 0;
}

int attend_max_dim() { return MAXDIM; }

// out [kv * groups, dim] = softmax(q k^T * scale) v for one query row per head, over the
// first `len` positions of keys/values [kv, cap, dim]; query head h*groups+g reads key
// head h. dim a multiple of 8 up to MAXDIM, groups up to MAXG. Returns 0, or a negative
// code (nothing written).
static bool attend_fits(int groups, int dim) {
    return groups >= 1 && groups <= MAXG && dim % 8 == 0 && dim > 0 && dim <= MAXDIM;
}

// `attend`'s work; scores: room for kv * groups * len floats
static void attend_heads(const float *q, const float *keys, const float *values, int kv,
                         int groups, int cap, int len, int dim, float scale, float *out,
                         float *scores, int threads) {
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
}

int attend(const float *q, const float *keys, const float *values, int kv, int groups,
           int cap, int len, int dim, float scale, float *out, int threads) {
    if (!attend_fits(groups, dim) || len < 1 || len > cap) return -1;
    float *scores = (float *)malloc(sizeof(float) * (size_t)kv * groups * len);
    if (!scores) return -2;
    attend_heads(q, keys, values, kv, groups, cap, len, dim, scale, out, scores, threads);
    free(scores);
    return 0;
}


// x [n, hidden] (+)= w' h for a block weight, h quantized into `a` first
static void linear(const uint8_t *blocks, int out, int in, const float *h, int n, const Acts &a,
                   float *y, bool add, int threads) {
    quantize(h, n, in, a);
    product(blocks, out, in / QK, a, n, y, out, add, threads);
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
// each layer's keys and values are written into its cache [kv, cap, dim] at those
// positions. The weights of layer l are ptrs[l * PER_LAYER + ...]: the two norms' float
// weights, the fused q/k/v projection's blocks and float bias (or NULL), the output
// projection's, the fused gate/up projection's and the down projection's blocks (no
// biases). sizes: layers, hidden, heads, kv heads, head dim, intermediate size. cos/sin:
// the rotary tables [cap, dim]. The activation is SiLU. Returns 0, or a negative code
// (-1: sizes it cannot take, nothing written; -2: out of memory).
int decode_layers(const void *const *ptrs, const int *sizes, float eps, float scale, float *x,
                  int n, int past, const float *cos, const float *sin, float *const *keys,
                  float *const *values, int cap, int threads) {
    const int layers = sizes[0], hidden = sizes[1], heads = sizes[2], kv = sizes[3],
              dim = sizes[4], inter = sizes[5];
    if (n < 1 || n > MAXN || past < 0 || past + n > cap || kv < 1 || heads % kv ||
        !attend_fits(heads / kv, dim) || hidden % QK || inter % QK || (heads * dim) % QK)
        return -1;
    const int groups = heads / kv, qd = heads * dim, kd = kv * dim, width = qd + 2 * kd;
    const int widest = hidden > inter ? (hidden > qd ? hidden : qd) : (inter > qd ? inter : qd);
    const size_t act_blocks = (size_t)n * widest / QK;
    const size_t floats = (size_t)n * (hidden + width + qd + 2 * inter + inter) +
                          (size_t)heads * (past + n);
    uint8_t *mem = (uint8_t *)aligned_alloc(32, acts_bytes(act_blocks));
    float *buf = (float *)malloc(sizeof(float) * floats);
    if (!mem || !buf) {
        free(mem);
        free(buf);
        return -2;
    }
    const Acts a = acts_in(mem, act_blocks);
    float *h = buf, *qkv = h + (size_t)n * hidden, *att = qkv + (size_t)n * width,
          *gu = att + (size_t)n * qd, *act = gu + (size_t)n * 2 * inter,
          *scores = act + (size_t)n * inter;
    for (int l = 0; l < layers; l++) {
        const void *const *p = ptrs + (size_t)l * PER_LAYER;
        float *K = keys[l], *V = values[l];
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
            for (int hd = 0; hd < kv; hd++) {
                memcpy(K + ((size_t)hd * cap + pos) * dim, row + qd + (size_t)hd * dim,
                       sizeof(float) * dim);
                memcpy(V + ((size_t)hd * cap + pos) * dim, row + qd + kd + (size_t)hd * dim,
                       sizeof(float) * dim);
            }
        }
        for (int i = 0; i < n; i++)
            attend_heads(qkv + (size_t)i * width, K, V, kv, groups, cap, past + i + 1, dim,
                         scale, att + (size_t)i * qd, scores, threads);
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
}
