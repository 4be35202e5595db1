// int4 weights (blocks of 32 inputs: w = q * d + m, q in 0..15, d and m float16: a GGUF
// Q4_1 block, stored as it is, 20 bytes, so a row is read as one stream) multiplied by a few rows of activations quantized to int8 per
// block of 32 (x = xq * xd). The block's dot product is integer arithmetic:
//   sum_j w_j x_j = d * xd * sum_j q_j xq_j + m * xd * sum_j xq_j
// and AVX2 multiplies 32 unsigned 4-bit by 32 signed 8-bit values in two instructions
// (vpmaddubsw, vpmaddwd). Built by q4native.py with the system's C++ compiler; see there.
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QK 32
#define MAXN 16

extern "C" {

int q4_block() { return QK; }
int q4_max_rows() { return MAXN; }

// y [n, out] = x [n, in] @ W.T, W given as blocks [out, in/32, 20]: d and m (float16
// bits), then 16 bytes of codes (byte j: element j in the low nibble, element j + 16 in
// the high one). Returns 0, or a negative code when n or in is out of range or memory
// runs out (nothing written).
int q4_linear(const uint8_t *blocks, int out, int in,
              const float *x, int n, float *y, int threads) {
    if (n < 1 || n > MAXN || in % QK != 0 || in <= 0) return -1;
    const int nb = in / QK;
    int8_t *xq = (int8_t *)aligned_alloc(32, (size_t)n * in + 32);
    float *xd = (float *)malloc(sizeof(float) * (size_t)n * nb * 2);
    if (!xq || !xd) {
        free(xq);
        free(xd);
        return -2;
    }
    float *xs = xd + (size_t)n * nb;  // xd * sum(xq): the m term's factor
    for (int i = 0; i < n; i++) {
        for (int b = 0; b < nb; b++) {
            const float *v = x + (size_t)i * in + (size_t)b * QK;
            float amax = 0.f;
            for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(v[j]));
            const float scale = amax / 127.f, inv = amax > 0.f ? 127.f / amax : 0.f;
            int8_t *q = xq + ((size_t)i * nb + b) * QK;
            int sum = 0;
            for (int j = 0; j < QK; j++) {
                const int t = (int)lrintf(v[j] * inv);
                q[j] = (int8_t)t;
                sum += t;
            }
            xd[(size_t)i * nb + b] = scale;
            xs[(size_t)i * nb + b] = scale * (float)sum;
        }
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
                const __m256i xv = _mm256_load_si256((const __m256i *)(xq + k * QK));
                const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), ones);
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(db * xd[k]), _mm256_cvtepi32_ps(p), acc[i]);
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
}
