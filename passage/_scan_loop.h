/* passage/_scan_loop.h: the scan loop of passage/_scan.c, included there once per instruction set
 * (a C template): the includer defines VARIANT (the functions' suffix), VFLOATS (floats per vector
 * register: 16 for AVX-512, 8 for AVX2, 4 for SSE or NEON, 1 for plain C) and COLS (matmul columns
 * summed at once, a multiple of VFLOATS: ROWS x COLS / VFLOATS sums stay in registers). */

#define PASTE_(a, b) a##_##b
#define PASTE(a, b) PASTE_(a, b)
#define VEC PASTE(vec, VARIANT)
#define VEC_U PASTE(vec_unaligned, VARIANT)

#if VFLOATS > 1
typedef float VEC __attribute__((vector_size(VFLOATS * 4)));
typedef float VEC_U __attribute__((vector_size(VFLOATS * 4), aligned(4), may_alias));
#define LOAD(p) (*(const VEC_U *)(p))
#define STORE(p, v) (*(VEC_U *)(p) = (v))
#define BROADCAST(x) ((VEC){0} + (x))
#else
typedef float VEC;
#define LOAD(p) (*(p))
#define STORE(p, v) (*(p) = (v))
#define BROADCAST(x) (x)
#endif

/* gh[r, :] = b + h[r] @ wt for the R (<= ROWS) rows h[0] .. h[R - 1] */
static inline __attribute__((always_inline)) void
PASTE(recurrent_matmul, VARIANT)(const int R, const float *const *h, const float *restrict wt,
                                 const float *restrict b, float *restrict gh, Py_ssize_t size,
                                 Py_ssize_t n)
{
    Py_ssize_t j0 = 0;
    for (; j0 + COLS <= n; j0 += COLS) {
        VEC acc[ROWS][COLS / VFLOATS];
        for (int r = 0; r < R; r++)
            for (int v = 0; v < COLS / VFLOATS; v++)
                acc[r][v] = LOAD(b + j0 + v * VFLOATS);
        for (Py_ssize_t k = 0; k < size; k++) {
            VEC w[COLS / VFLOATS];
            for (int v = 0; v < COLS / VFLOATS; v++)
                w[v] = LOAD(wt + k * n + j0 + v * VFLOATS);
            for (int r = 0; r < R; r++) {
                const VEC hv = BROADCAST(h[r][k]);
                for (int v = 0; v < COLS / VFLOATS; v++)
                    acc[r][v] += hv * w[v];
            }
        }
        for (int r = 0; r < R; r++)
            for (int v = 0; v < COLS / VFLOATS; v++)
                STORE(gh + r * n + j0 + v * VFLOATS, acc[r][v]);
    }
    for (; j0 + VFLOATS <= n; j0 += VFLOATS) { /* past the last full COLS: a vector at a time */
        VEC acc[ROWS];
        for (int r = 0; r < R; r++)
            acc[r] = LOAD(b + j0);
        for (Py_ssize_t k = 0; k < size; k++) {
            const VEC w = LOAD(wt + k * n + j0);
            for (int r = 0; r < R; r++)
                acc[r] += BROADCAST(h[r][k]) * w;
        }
        for (int r = 0; r < R; r++)
            STORE(gh + r * n + j0, acc[r]);
    }
    if (j0 < n) { /* then the last columns, fewer than a vector */
        for (int r = 0; r < R; r++)
            for (Py_ssize_t j = j0; j < n; j++)
                gh[r * n + j] = b[j];
        for (Py_ssize_t k = 0; k < size; k++)
            for (int r = 0; r < R; r++)
                for (Py_ssize_t j = j0; j < n; j++)
                    gh[r * n + j] += h[r][k] * wt[k * n + j];
    }
}

/* one row's step from its input projection gi and recurrent sums gh: the new state in h (and c) */
static inline __attribute__((always_inline)) void
PASTE(step, VARIANT)(int kind, const float *restrict gi, const float *restrict gh,
                     float *restrict h, float *restrict c, Py_ssize_t size)
{
    if (kind == 'g') {
        for (Py_ssize_t j = 0; j < size; j++) {
            float r = sigmoid_f32(gi[j] + gh[j]);
            float z = sigmoid_f32(gi[size + j] + gh[size + j]);
            float n = tanh_f32(gi[2 * size + j] + r * gh[2 * size + j]);
            h[j] = n + z * (h[j] - n);
        }
    } else if (kind == 'l') {
        for (Py_ssize_t j = 0; j < size; j++) {
            float i = sigmoid_f32(gi[j] + gh[j]);
            float f = sigmoid_f32(gi[size + j] + gh[size + j]);
            float g = tanh_f32(gi[2 * size + j] + gh[2 * size + j]);
            float o = sigmoid_f32(gi[3 * size + j] + gh[3 * size + j]);
            float cj = f * c[j] + i * g;
            c[j] = cj;
            h[j] = o * tanh_f32(cj);
        }
    } else if (kind == 'r') {
        for (Py_ssize_t j = 0; j < size; j++) {
            float a = gi[j] + gh[j];
            h[j] = a > 0.0f ? a : 0.0f;
        }
    } else {
        for (Py_ssize_t j = 0; j < size; j++)
            h[j] = tanh_f32(gi[j] + gh[j]);
    }
}

/* every row of the batch through its steps, in lanes (passage/_scan.c's plan: rows dealt to
 * lanes, each lane running its rows one after another): at each step the lanes still running go
 * through the matmul ROWS at a time, so the groups stay full however the lengths differ;
 * gh: scratch of ROWS * n floats */
static void PASTE(scan_rows, VARIANT)(const Scan *s, const Plan *plan, float *restrict gh)
{
    const Py_ssize_t size = s->size, n = s->n, width = s->width, batch = s->batch;
    const Py_ssize_t *next = plan->next;
#define LEN(i) row_length(s, i)
    /* the position row i reads at its step t: t, or from its last real step back with reverse */
#define AT(i, t) (s->reverse ? LEN(i) - 1 - (t) : (t))
    if (s->pooled)
        for (Py_ssize_t i = 0; i < batch * size; i++)
            s->pooled[i] = s->pool == 'm' ? -INFINITY : 0.0f;
    Py_ssize_t row[MAX_LANES], t[MAX_LANES]; /* each running lane's row and that row's step */
    int lane[MAX_LANES], running = 0;        /* the running lanes, in order */
    for (int l = 0; l < plan->lanes; l++) {
        row[l] = plan->first[l];
        t[l] = 0;
        lane[running++] = l;
    }
    while (running) {
        for (int g = 0; g < running; g += ROWS) {
            const int rows = running - g < ROWS ? running - g : ROWS;
            const int *lg = lane + g;
            const float *h[ROWS];
            for (int r = 0; r < rows; r++)
                h[r] = s->h + row[lg[r]] * size;
            switch (rows) { /* each case a matmul with its row count known */
            case 4: PASTE(recurrent_matmul, VARIANT)(4, h, s->wt, s->b, gh, size, n); break;
            case 3: PASTE(recurrent_matmul, VARIANT)(3, h, s->wt, s->b, gh, size, n); break;
            case 2: PASTE(recurrent_matmul, VARIANT)(2, h, s->wt, s->b, gh, size, n); break;
            default: PASTE(recurrent_matmul, VARIANT)(1, h, s->wt, s->b, gh, size, n); break;
            }
            if (s->ids) /* each lane's next table row, read from memory meanwhile (a
                           vocabulary's table is not cached) */
                for (int r = 0; r < rows; r++) {
                    Py_ssize_t i = row[lg[r]], u = t[lg[r]] + 1;
                    if (u >= LEN(i)) {
                        i = next[i];
                        u = 0;
                    }
                    if (i >= 0) {
                        const float *ahead = s->src + s->ids[i * width + AT(i, u)] * n;
                        for (Py_ssize_t j = 0; j < n; j += 16)
                            PREFETCH(ahead + j);
                    }
                }
            for (int r = 0; r < rows; r++) {
                const Py_ssize_t i = row[lg[r]], at = AT(i, t[lg[r]]);
                const float *gi = s->ids ? s->src + s->ids[i * width + at] * n
                                         : s->src + (i * width + at) * n;
                float *hr = s->h + i * size;
                PASTE(step, VARIANT)(s->kind, gi, gh + r * n, hr,
                                     s->c ? s->c + i * size : NULL, size);
                if (s->out)
                    memcpy(s->out + (i * width + at) * size, hr, size * sizeof(float));
                if (s->pooled) {
                    float *p = s->pooled + i * size;
                    if (s->pool == 'm')
                        for (Py_ssize_t j = 0; j < size; j++)
                            p[j] = hr[j] > p[j] ? hr[j] : p[j];
                    else
                        for (Py_ssize_t j = 0; j < size; j++)
                            p[j] += hr[j];
                }
            }
        }
        int still = 0; /* every lane one step on: to its row's next step, or its next row */
        for (int k = 0; k < running; k++) {
            const int l = lane[k];
            if (++t[l] >= LEN(row[l])) {
                row[l] = next[row[l]];
                t[l] = 0;
            }
            if (row[l] >= 0)
                lane[still++] = l;
        }
        running = still;
    }
    if (s->pooled)
        for (Py_ssize_t i = 0; i < batch; i++) {
            float *p = s->pooled + i * size;
            const Py_ssize_t len = LEN(i);
            const float scale = s->pool == 'm' ? 1.0f : 1.0f / (float)(len > 0 ? len : 1);
            for (Py_ssize_t j = 0; j < size; j++)
                p[j] = len == 0 ? 0.0f : p[j] * scale;
        }
#undef AT
#undef LEN
}

#undef VEC
#undef VEC_U
#undef LOAD
#undef STORE
#undef BROADCAST
