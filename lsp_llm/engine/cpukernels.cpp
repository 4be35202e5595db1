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

// y [n, out] = x [n, in] @ W.T, W given as blocks [out, in/32, 20]: d and m (float16
// bits), then 16 bytes of codes (byte j: element j in the low nibble, element j + 16 in
// the high one). Returns 0, or a negative code when n or in is out of range or memory
// runs out (nothing written).
int q4_linear(const uint8_t *blocks, int out, int in, const float *x, int n, float *y,
              int threads) {
    if (n < 1 || n > MAXN || in % QK != 0 || in <= 0) return -1;
    const int nb = in / QK;
    const size_t count = (size_t)n * nb;
    int8_t *xq = (int8_t *)aligned_alloc(32, 2 * count * QK);
    float *xd = (float *)malloc(sizeof(float) * count * 3);
    if (!xq || !xd) {
        free(xq);
        free(xd);
        return -2;
    }
    // each block of activations as two int8 parts: x ~ hi * s + lo * s / 254, where the
    // low part is what rounding the high one left (|x - hi * s| <= s / 2): about 15 bits
    // of precision for the price of a second integer dot product, which is cheap here
    // (decoding waits on reading the weights, not on arithmetic)
    int8_t *lo_q = xq + count * QK;
    float *lo_d = xd + count;
    float *xs = xd + 2 * count;  // sum(x): the m term's factor
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
        int8_t *hi = xq + k * QK;
        int8_t *lo = lo_q + k * QK;
        for (int j = 0; j < QK; j++) {
            const int t = (int)lrintf(v[j] * inv);
            hi[j] = (int8_t)t;
            const int u = (int)lrintf((v[j] - (float)t * scale) * inv_fine);
            lo[j] = (int8_t)(u > 127 ? 127 : (u < -127 ? -127 : u));
        }
        xd[k] = scale;
        lo_d[k] = fine;
        xs[k] = sum;
    }
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
                const __m256i xh = _mm256_load_si256((const __m256i *)(xq + k * QK));
                const __m256i xl = _mm256_load_si256((const __m256i *)(lo_q + k * QK));
                const __m256 ph = _mm256_cvtepi32_ps(
                    _mm256_madd_epi16(_mm256_maddubs_epi16(q, xh), ones));
                const __m256 pl = _mm256_cvtepi32_ps(
                    _mm256_madd_epi16(_mm256_maddubs_epi16(q, xl), ones));
                const __m256 part = _mm256_fmadd_ps(
                    pl, _mm256_set1_ps(lo_d[k]), _mm256_mul_ps(ph, _mm256_set1_ps(xd[k])));
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(db), part, acc[i]);
                macc[i] += mb * xs[k];
            }
        }
        for (int i = 0; i < n; i++) {
            __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1));
            s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            s = _mm_add_ss(s, _mm_movehdup_ps(s));
            y[(size_t)i * out + r] = _mm_cvtss_f32(s) + macc[i];
        }
    }
    free(xq);
    free(xd);
    return 0;
}

int attend_max_dim() { return MAXDIM; }

// out [kv * groups, dim] = softmax(q k^T * scale) v for one query row per head, over the
// first `len` positions of keys/values [kv, cap, dim]; query head h*groups+g reads key
// head h. dim a multiple of 8 up to MAXDIM, groups up to MAXG. Returns 0, or a negative
// code (nothing written).
int attend(const float *q, const float *keys, const float *values, int kv, int groups,
           int cap, int len, int dim, float scale, float *out, int threads) {
    if (groups < 1 || groups > MAXG || len < 1 || len > cap || dim % 8 || dim > MAXDIM)
        return -1;
    const int lanes = dim / 8;
    float *scores = (float *)malloc(sizeof(float) * (size_t)kv * groups * len);
    if (!scores) return -2;
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
}
