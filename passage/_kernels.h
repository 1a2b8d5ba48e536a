/* passage/_kernels.h: what the compiled recurrent kernels share (_gru.c, _scan.c): one copy
 * of a loop per instruction set, float32 <-> bfloat16, and branch-free exp, sigmoid and tanh
 * (so the loops vectorise). */
#ifndef PASSAGE_KERNELS_H
#define PASSAGE_KERNELS_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
/* one copy per instruction set, picked when the module loads (glibc's ifunc) */
#define CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define CLONES
#endif
#ifdef _MSC_VER
#define restrict __restrict
#endif

/* ---- float32 <-> bfloat16 ------------------------------------------------------------------ */

static inline float from_bf16(uint16_t v)
{
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16; /* to nearest, ties to even */
    uint32_t nan = 0u - (uint32_t)((u & 0x7FFFFFFFu) > 0x7F800000u); /* all ones for a NaN */
    return (uint16_t)((rounded & ~nan) | (((u >> 16) | 0x40u) & nan)); /* (no branch) */
}

/* ---- exp, sigmoid, tanh: branch-free, so the loops vectorise -------------------------------- */

static inline float exp_f32(float x)
{
    /* exp(x) = 2^k exp(r), k = round(x / ln 2), |r| <= ln 2 / 2; a degree-6 polynomial for
     * exp(r) (relative error about 2e-7) */
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504088896341f + shifter;
    float k = t - shifter;
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits; /* k in [-126, 127] after the clamp: 2^k is a normal float */
    memcpy(&bits, &t, 4);
    bits = (bits - 0x4B400000u) + 127u; /* k as an integer, biased: 2^k's exponent */
    bits <<= 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

static inline float sigmoid_f32(float x)
{
    return 1.0f / (1.0f + exp_f32(-x));
}

/* absolute error about 6e-8; relative error grows near 0 (tanh(1e-8) gives 0), which a GRU
 * state does not notice */
static inline float tanh_f32(float x)
{
    return 2.0f * sigmoid_f32(2.0f * x) - 1.0f;
}

#endif
