/* passage._gru: the elementwise part of one GRU step, fused (optional; recurrent.py falls back to
 * PyTorch ops). GRUScan runs each step as one matmul (PyTorch) and one call here, which reads the
 * step's gate pre-activations and writes the gates, the candidate and the new state (forward), or
 * the gradients of the pre-activations and the state's direct share (backward), in one pass, in
 * float32 arithmetic, for float32 or bfloat16 tensors (bfloat16 rounded to nearest even, as
 * PyTorch rounds). PyTorch runs the same math as about six small ops per step, each a dispatch.
 *
 * The functions take raw addresses (tensor.data_ptr()) of contiguous tensors: private to
 * recurrent.py, which allocates and checks them.
 *
 * GRU (PyTorch's layout, gates r, z, n):  r, z = sigmoid(gi_rz + gh_rz);  n = tanh(gi_n + r * gh_n);
 * h' = n + z * (h - n), with gh = h @ w_hh.T + b_hh.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_kernels.h"

/* ---- the two steps, in float32 --------------------------------------------------------------- */

/* forward: gi, gh (rows, 3H) -> rz (rows, 2H), n, ghn (gh's n part, kept for backward) and h_next
 * (rows, H), from h (rows, H) */
CLONES static void forward_f32(const float *restrict gi, const float *restrict gh,
                               const float *restrict h, float *restrict rz, float *restrict n,
                               float *restrict ghn, float *restrict h_next, Py_ssize_t rows,
                               Py_ssize_t size)
{
    for (Py_ssize_t b = 0; b < rows; b++) {
        const float *gi_b = gi + 3 * size * b, *gh_b = gh + 3 * size * b;
        float *rz_b = rz + 2 * size * b;
        Py_ssize_t o = size * b;
        for (Py_ssize_t j = 0; j < size; j++) {
            float r = sigmoid_f32(gi_b[j] + gh_b[j]);
            float z = sigmoid_f32(gi_b[size + j] + gh_b[size + j]);
            float g = gh_b[2 * size + j];
            float c = tanh_f32(gi_b[2 * size + j] + r * g);
            rz_b[j] = r;
            rz_b[size + j] = z;
            n[o + j] = c;
            ghn[o + j] = g;
            h_next[o + j] = c + z * (h[o + j] - c);
        }
    }
}

/* backward: with d = d_out + dh (the gradient reaching h'), writes d_gi_n (rows, H), d_gh (rows,
 * 3H; its r and z parts are also d_gi's) and dhz = d * z (h's direct share; the caller adds
 * d_gh @ w_hh) */
CLONES static void backward_f32(const float *restrict d_out, const float *restrict dh,
                                const float *restrict rz, const float *restrict n,
                                const float *restrict ghn, const float *restrict h,
                                float *restrict d_gi_n, float *restrict d_gh,
                                float *restrict dhz, Py_ssize_t rows, Py_ssize_t size)
{
    for (Py_ssize_t b = 0; b < rows; b++) {
        const float *rz_b = rz + 2 * size * b;
        float *d_gh_b = d_gh + 3 * size * b;
        Py_ssize_t o = size * b;
        for (Py_ssize_t j = 0; j < size; j++) {
            float d = d_out[o + j] + dh[o + j];
            float r = rz_b[j], z = rz_b[size + j], c = n[o + j];
            float d_an = d * (1.0f - z) * (1.0f - c * c);
            d_gh_b[j] = d_an * ghn[o + j] * r * (1.0f - r);
            d_gh_b[size + j] = d * (h[o + j] - c) * z * (1.0f - z);
            d_gh_b[2 * size + j] = d_an * r;
            d_gi_n[o + j] = d_an;
            dhz[o + j] = d * z;
        }
    }
}

/* ---- bfloat16: one row at a time through float32 buffers ------------------------------------ */

CLONES static void widen(const uint16_t *restrict src, float *restrict dst, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++)
        dst[i] = from_bf16(src[i]);
}

CLONES static void narrow(const float *restrict src, uint16_t *restrict dst, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++)
        dst[i] = to_bf16(src[i]);
}

static int forward_bf16(const uint16_t *gi, const uint16_t *gh, const uint16_t *h, uint16_t *rz,
                        uint16_t *n, uint16_t *ghn, uint16_t *h_next, Py_ssize_t rows,
                        Py_ssize_t size)
{
    float *buf = malloc(12 * (size_t)size * sizeof(float)); /* (no GIL: not PyMem) */
    if (!buf)
        return -1;
    float *gi_f = buf, *gh_f = gi_f + 3 * size, *h_f = gh_f + 3 * size, *rz_f = h_f + size;
    float *n_f = rz_f + 2 * size, *ghn_f = n_f + size, *hn_f = ghn_f + size;
    for (Py_ssize_t b = 0; b < rows; b++) {
        widen(gi + 3 * size * b, gi_f, 3 * size);
        widen(gh + 3 * size * b, gh_f, 3 * size);
        widen(h + size * b, h_f, size);
        forward_f32(gi_f, gh_f, h_f, rz_f, n_f, ghn_f, hn_f, 1, size);
        narrow(rz_f, rz + 2 * size * b, 2 * size);
        narrow(n_f, n + size * b, size);
        narrow(ghn_f, ghn + size * b, size);
        narrow(hn_f, h_next + size * b, size);
    }
    free(buf);
    return 0;
}

static int backward_bf16(const uint16_t *d_out, const uint16_t *dh, const uint16_t *rz,
                         const uint16_t *n, const uint16_t *ghn, const uint16_t *h,
                         uint16_t *d_gi_n, uint16_t *d_gh, uint16_t *dhz, Py_ssize_t rows,
                         Py_ssize_t size)
{
    float *buf = malloc(14 * (size_t)size * sizeof(float));
    if (!buf)
        return -1;
    float *do_f = buf, *dh_f = do_f + size, *rz_f = dh_f + size, *n_f = rz_f + 2 * size;
    float *ghn_f = n_f + size, *h_f = ghn_f + size, *dgin_f = h_f + size;
    float *dgh_f = dgin_f + size, *dhz_f = dgh_f + 3 * size;
    for (Py_ssize_t b = 0; b < rows; b++) {
        Py_ssize_t o = size * b;
        widen(d_out + o, do_f, size);
        widen(dh + o, dh_f, size);
        widen(rz + 2 * o, rz_f, 2 * size);
        widen(n + o, n_f, size);
        widen(ghn + o, ghn_f, size);
        widen(h + o, h_f, size);
        backward_f32(do_f, dh_f, rz_f, n_f, ghn_f, h_f, dgin_f, dgh_f, dhz_f, 1, size);
        narrow(dgin_f, d_gi_n + o, size);
        narrow(dgh_f, d_gh + 3 * o, 3 * size);
        narrow(dhz_f, dhz + o, size);
    }
    free(buf);
    return 0;
}

/* ---- Python entry points ------------------------------------------------------------------- */

/* args: n_ptrs addresses, then batch, size, and bf16 (0 or 1) */
static int parse(PyObject *const *args, Py_ssize_t nargs, int n_ptrs, void **ptrs,
                 Py_ssize_t *batch, Py_ssize_t *size, int *bf16)
{
    if (nargs != n_ptrs + 3) {
        PyErr_Format(PyExc_TypeError, "expected %d arguments, got %zd", n_ptrs + 3, nargs);
        return -1;
    }
    for (int i = 0; i < n_ptrs; i++) {
        ptrs[i] = PyLong_AsVoidPtr(args[i]);
        if (!ptrs[i]) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a null address");
            return -1;
        }
    }
    *batch = PyLong_AsSsize_t(args[n_ptrs]);
    *size = PyLong_AsSsize_t(args[n_ptrs + 1]);
    *bf16 = PyObject_IsTrue(args[n_ptrs + 2]);
    if (PyErr_Occurred())
        return -1;
    if (*batch < 0 || *size < 0) {
        PyErr_SetString(PyExc_ValueError, "batch and size must be >= 0");
        return -1;
    }
    return 0;
}

static PyObject *forward(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    void *p[7];
    Py_ssize_t batch, size;
    int bf16;
    if (parse(args, nargs, 7, p, &batch, &size, &bf16))
        return NULL;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    if (!bf16)
        forward_f32(p[0], p[1], p[2], p[3], p[4], p[5], p[6], batch, size);
    else
        err = forward_bf16(p[0], p[1], p[2], p[3], p[4], p[5], p[6], batch, size);
    Py_END_ALLOW_THREADS
    if (err)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *backward(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    void *p[9];
    Py_ssize_t batch, size;
    int bf16;
    if (parse(args, nargs, 9, p, &batch, &size, &bf16))
        return NULL;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    if (!bf16)
        backward_f32(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], batch, size);
    else
        err = backward_bf16(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], batch, size);
    Py_END_ALLOW_THREADS
    if (err)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"forward", (PyCFunction)(void (*)(void))forward, METH_FASTCALL,
     "forward(gi, gh, h, rz, n, ghn, h_next, batch, size, bf16): one step's gates and state."},
    {"backward", (PyCFunction)(void (*)(void))backward, METH_FASTCALL,
     "backward(d_out, dh, rz, n, ghn, h, d_gi_n, d_gh, dhz, batch, size, bf16): one step's "
     "pre-activation gradients and the state's direct share."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "passage._gru",
    .m_doc = "The elementwise part of a GRU step, fused (see recurrent.GRUScan).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__gru(void)
{
    return PyModule_Create(&module);
}
