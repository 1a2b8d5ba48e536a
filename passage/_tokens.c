/* passage._tokens: the Tokenizer's compiled engine (optional: without it, the dispatch in
 * passage/_tokenizer/__init__.py falls back to the numpy engine, _tokenizer/numpy_engine.py).
 *
 * A Lexicon maps token byte strings (UTF-8) to dense ids 0..n-1, given in order of first
 * occurrence, and counts each token's documents and occurrences. `count` splits texts into tokens
 * the way _tokenizer/rules.py says (words and punctuation marks, or characters) and returns the
 * id of every token, in one pass over the bytes: no Python object per token. The Python objects are
 * read first; the splitting and counting run with the GIL released, so several threads can count
 * parts of a corpus in their own Lexicons (then `merge` them) or look tokens up in a shared one.
 *
 * Word splitting is driven by a 256-entry byte class table built in Python (0 word byte, 1 the
 * space, 2 a one-byte mark, 3 the first byte of a multi-byte mark or of another character) and the
 * multi-byte marks' UTF-8, so the punctuation set is defined once, in passage/_tokenizer/rules.py
 * (handed over by _tokenizer/compiled.py).
 *
 * `to_lists` turns flat ids back into lists of shared int objects, for the 2015 list output.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MARKS 16
#define PAD 8 /* readable bytes after every token: keys are read 8 bytes at a time */

enum { OK = 0, NO_MEMORY = -1, TOO_MANY = -2 };

typedef struct {
    uint64_t key; /* 0: empty */
    int64_t id;
} Slot;

typedef struct {
    int64_t df, tf, last_doc; /* documents, occurrences, the last document it was seen in */
} Counts;

typedef struct {
    PyObject_HEAD
    uint8_t cls[256];
    unsigned char marks[MAX_MARKS][4];
    int mark_len[MAX_MARKS];
    int n_marks;
    /* tokens, by id */
    char *arena; /* their bytes, one after the other (and PAD spare bytes) */
    Py_ssize_t arena_len, arena_cap;
    Py_ssize_t *start; /* offset in arena */
    int32_t *len;      /* length in bytes */
    Counts *counts;
    Py_ssize_t n, cap;
    int64_t docs; /* documents counted so far */
    /* open addressing, linear probing, at most half full */
    Slot *slots;
    Py_ssize_t mask;
    int shift; /* 64 - log2(number of slots) */
    /* threads inside `count` (checked and changed with the GIL held) */
    int readers, writer;
    int broken; /* an error stopped a count or merge half way: the counts are wrong */
} Lexicon;

/* ---- keys and the table -------------------------------------------------------------------- */

/* A token's key: below 8 bytes, its bytes and its length (in the top byte), so equal keys are
 * equal tokens; from 8 bytes on, a hash with the top byte 0xFF, checked against the bytes. Never 0.
 * Reads whole 8-byte words: there must be PAD readable bytes past the token. */
static inline uint64_t token_key(const unsigned char *p, Py_ssize_t n)
{
    uint64_t w;
    memcpy(&w, p, 8);
    if (n < 8)
        return (n ? w & (~0ULL >> (64 - 8 * n)) : 0) | (uint64_t)n << 56;
    uint64_t h = 0x9E3779B97F4A7C15ULL * (uint64_t)n;
    for (;;) { /* splitmix64's finalizer after every word */
        h ^= w;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
        h ^= h >> 31;
        p += 8;
        n -= 8;
        if (n <= 0)
            break;
        memcpy(&w, p, 8);
        if (n < 8)
            w &= ~0ULL >> (64 - 8 * n);
    }
    return h >> 8 | 0xFFULL << 56;
}

static inline Py_ssize_t home(const Lexicon *lex, uint64_t key)
{
    return (Py_ssize_t)((key * 0x9E3779B97F4A7C15ULL) >> lex->shift); /* Fibonacci hashing */
}

static int grow_table(Lexicon *lex, int bits)
{
    Slot *slots = calloc((size_t)1 << bits, sizeof(Slot));
    if (!slots)
        return NO_MEMORY;
    Slot *old = lex->slots;
    Py_ssize_t old_size = old ? lex->mask + 1 : 0;
    lex->slots = slots;
    lex->mask = ((Py_ssize_t)1 << bits) - 1;
    lex->shift = 64 - bits;
    for (Py_ssize_t i = 0; i < old_size; i++) {
        if (!old[i].key)
            continue;
        Py_ssize_t j = home(lex, old[i].key);
        while (slots[j].key)
            j = (j + 1) & lex->mask;
        slots[j] = old[i];
    }
    free(old);
    return OK;
}

/* The slot of the token p[:n] with this key: where it is, or the empty slot where it would go. */
static inline Slot *probe(const Lexicon *lex, uint64_t key, const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t j = home(lex, key);
    for (;;) {
        Slot *s = lex->slots + j;
        if (!s->key)
            return s;
        if (s->key == key && (n < 8 || (lex->len[s->id] == n &&
                                        memcmp(lex->arena + lex->start[s->id], p, n) == 0)))
            return s;
        j = (j + 1) & lex->mask;
    }
}

static int reserve(void **p, Py_ssize_t count, size_t item)
{
    void *q = realloc(*p, (size_t)count * item);
    if (!q)
        return NO_MEMORY;
    *p = q;
    return OK;
}

/* Give the next id to the token p[:n], not in the table, whose empty slot is s: the id, or an
 * error code (< 0). The table grows first if it would be more than half full. */
static Py_ssize_t insert(Lexicon *lex, Slot *s, uint64_t key, const unsigned char *p,
                         Py_ssize_t n)
{
    if (n > INT32_MAX || lex->n >= INT32_MAX - 1)
        return TOO_MANY;
    if (2 * (lex->n + 1) > lex->mask + 1) {
        if (grow_table(lex, 64 - lex->shift + 1))
            return NO_MEMORY;
        s = probe(lex, key, p, n);
    }
    if (lex->n == lex->cap) {
        Py_ssize_t cap = lex->cap ? 2 * lex->cap : 1024;
        if (reserve((void **)&lex->start, cap, sizeof(Py_ssize_t)) ||
            reserve((void **)&lex->len, cap, sizeof(int32_t)) ||
            reserve((void **)&lex->counts, cap, sizeof(Counts)))
            return NO_MEMORY;
        lex->cap = cap;
    }
    if (lex->arena_len + n + PAD > lex->arena_cap) {
        Py_ssize_t cap = 2 * lex->arena_cap + n + PAD + 4096;
        if (reserve((void **)&lex->arena, cap, 1))
            return NO_MEMORY;
        lex->arena_cap = cap;
    }
    Py_ssize_t id = lex->n++;
    memcpy(lex->arena + lex->arena_len, p, (size_t)n);
    lex->start[id] = lex->arena_len;
    lex->arena_len += n;
    lex->len[id] = (int32_t)n;
    lex->counts[id] = (Counts){0, 0, -1};
    s->key = key;
    s->id = id;
    return id;
}

static PyObject *raise_code(int code)
{
    if (code == TOO_MANY)
        return PyErr_Format(PyExc_OverflowError, "too many or too long tokens for int32 ids");
    return PyErr_NoMemory();
}

/* ---- texts to bytes ------------------------------------------------------------------------ */

typedef struct {
    const unsigned char *p; /* UTF-8 bytes (PAD readable bytes after them not guaranteed) */
    Py_ssize_t n;
    int lower; /* ASCII text still to lowercase (A-Z only, as str.lower does for ASCII) */
} Text;

/* Where the UTF-8 of text (lowercased with str.lower if asked) is. ASCII str objects are read in
 * place and lowercased later, without the GIL; other texts are lowercased and encoded now, and
 * the bytes object is appended to keep. Returns -1 on error. */
static int read_text(PyObject *text, int lowercase, PyObject *keep, Text *out)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "texts must be str, got %.100s", Py_TYPE(text)->tp_name);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000 /* before 3.12 a str made by old C APIs may not be ready */
    if (PyUnicode_READY(text) < 0)
        return -1;
#endif
    if (PyUnicode_CheckExact(text) && PyUnicode_IS_ASCII(text)) {
        *out = (Text){PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text), lowercase};
        return 0;
    }
    static PyObject *lower_name;
    if (!lower_name && !(lower_name = PyUnicode_InternFromString("lower")))
        return -1;
    /* a str subclass's own lower() is called, as the reference engine does */
    PyObject *low = lowercase ? PyObject_CallMethodNoArgs(text, lower_name) : Py_NewRef(text);
    if (!low)
        return -1;
    if (!PyUnicode_Check(low)) {
        PyErr_Format(PyExc_TypeError, "a text's lower() returned %.100s, not a str",
                     Py_TYPE(low)->tp_name);
        Py_DECREF(low);
        return -1;
    }
    PyObject *code = PyUnicode_AsEncodedString(low, "utf-8", "surrogatepass");
    Py_DECREF(low);
    if (!code)
        return -1;
    int err = PyList_Append(keep, code);
    Py_DECREF(code);
    if (err)
        return -1;
    *out = (Text){(const unsigned char *)PyBytes_AS_STRING(code), PyBytes_GET_SIZE(code), 0};
    return 0;
}

/* A text's bytes into buf (n + PAD bytes), lowercased if asked, then PAD zero bytes. */
static void copy_text(const Text *t, unsigned char *restrict buf)
{
    const unsigned char *restrict src = t->p; /* locals and restrict: the loop vectorises */
    Py_ssize_t n = t->n;
    if (t->lower) {
        for (Py_ssize_t i = 0; i < n; i++) {
            unsigned char c = src[i];
            buf[i] = c + (unsigned char)(((unsigned char)(c - 'A') < 26u) << 5);
        }
    } else {
        memcpy(buf, src, (size_t)n);
    }
    memset(buf + n, 0, PAD);
}

/* ---- splitting and counting (no Python objects: runs without the GIL) ----------------------- */

typedef struct {
    int32_t *ids; /* the id of every token (-1: unknown, when not adding) */
    Py_ssize_t used, cap;
    int add; /* new tokens get ids, and every token's frequencies are counted */
} Output;

static inline int emit(Lexicon *lex, Output *out, const unsigned char *p, Py_ssize_t n)
{
    uint64_t key = token_key(p, n);
    Slot *s = probe(lex, key, p, n);
    Py_ssize_t id = s->key ? s->id : -1;
    if (out->add) {
        if (id < 0 && (id = insert(lex, s, key, p, n)) < 0)
            return (int)id;
        Counts *c = lex->counts + id;
        c->tf++;
        if (c->last_doc != lex->docs) {
            c->last_doc = lex->docs;
            c->df++;
        }
    }
    if (out->used == out->cap) {
        Py_ssize_t cap = out->cap ? 2 * out->cap : 1 << 16;
        if (reserve((void **)&out->ids, cap, sizeof(int32_t)))
            return NO_MEMORY;
        out->cap = cap;
    }
    out->ids[out->used++] = (int32_t)id;
    return OK;
}

static inline int mark_at(const Lexicon *lex, const unsigned char *p, Py_ssize_t left)
{
    for (int m = 0; m < lex->n_marks; m++) {
        int k = lex->mark_len[m];
        if (k <= left && memcmp(p, lex->marks[m], (size_t)k) == 0)
            return k;
    }
    return 0;
}

/* Emit the words and marks of s[:n] (PAD readable bytes after it). */
static int split_words(Lexicon *lex, Output *out, const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t word = 0, i = 0;
    int err;
    while (i < n) {
        uint8_t c = lex->cls[s[i]];
        if (c == 0) {
            i++;
            continue;
        }
        int k = c == 3 ? mark_at(lex, s + i, n - i) : (c == 2);
        if (c == 3 && !k) { /* another character that starts with a mark's first byte */
            i++;
            continue;
        }
        if (i > word && (err = emit(lex, out, s + word, i - word)))
            return err;
        if (k && (err = emit(lex, out, s + i, k)))
            return err;
        i += k ? k : 1;
        word = i;
    }
    return n > word ? emit(lex, out, s + word, n - word) : OK;
}

/* Emit every character (UTF-8 sequence) of s[:n]. */
static int split_chars(Lexicon *lex, Output *out, const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        Py_ssize_t k = 1;
        while (i + k < n && (s[i + k] & 0xC0) == 0x80)
            k++;
        int err = emit(lex, out, s + i, k);
        if (err)
            return err;
        i += k;
    }
    return OK;
}

static int count_texts(Lexicon *lex, Output *out, const Text *texts, Py_ssize_t n_texts,
                       int character, unsigned char *buf, int64_t *counts)
{
    for (Py_ssize_t d = 0; d < n_texts; d++) {
        Py_ssize_t before = out->used;
        copy_text(texts + d, buf);
        int err = character ? split_chars(lex, out, buf, texts[d].n)
                            : split_words(lex, out, buf, texts[d].n);
        if (err)
            return err;
        counts[d] = out->used - before;
        if (out->add)
            lex->docs++;
    }
    return OK;
}

static PyObject *Lexicon_count(Lexicon *lex, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"texts", "lowercase", "character", "add", NULL};
    PyObject *texts;
    int lowercase, character, add;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oppp", names, &texts, &lowercase, &character,
                                     &add))
        return NULL;
    if (lex->broken)
        return PyErr_Format(PyExc_RuntimeError, "this Lexicon's counts were cut short by an error");
    if (lex->writer || (add && lex->readers))
        return PyErr_Format(PyExc_RuntimeError, "this Lexicon is in use by another thread: give "
                                                "each thread that adds tokens its own");
    /* flagged before any Python code runs (it may let another thread in) */
    add ? (lex->writer = 1) : lex->readers++;
    PyObject *held = PySequence_Tuple(texts); /* the texts stay alive, whatever the caller does */
    PyObject *keep = PyList_New(0);
    PyObject *counts = NULL, *ids = NULL;
    Text *parts = NULL;
    unsigned char *buf = NULL;
    Output out = {NULL, 0, 0, add};
    if (!held || !keep)
        goto done;
    Py_ssize_t n_texts = PyTuple_GET_SIZE(held), longest = 0;
    if (!(parts = PyMem_Malloc((size_t)(n_texts ? n_texts : 1) * sizeof(Text)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t d = 0; d < n_texts; d++) {
        if (read_text(PyTuple_GET_ITEM(held, d), lowercase, keep, parts + d))
            goto done;
        longest = parts[d].n > longest ? parts[d].n : longest;
    }
    counts = PyByteArray_FromStringAndSize(NULL, n_texts * (Py_ssize_t)sizeof(int64_t));
    if (!counts)
        goto done;
    if (!(buf = PyMem_Malloc((size_t)(longest + PAD)))) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *count = (int64_t *)PyByteArray_AS_STRING(counts);
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = count_texts(lex, &out, parts, n_texts, character, buf, count);
    Py_END_ALLOW_THREADS
    if (err) {
        lex->broken = add;
        raise_code(err);
        goto done;
    }
    ids = PyByteArray_FromStringAndSize((const char *)out.ids,
                                        out.used * (Py_ssize_t)sizeof(int32_t));
done:
    add ? (lex->writer = 0) : lex->readers--;
    free(out.ids);
    PyMem_Free(parts);
    PyMem_Free(buf);
    Py_XDECREF(held);
    Py_XDECREF(keep);
    if (!ids) {
        Py_XDECREF(counts);
        return NULL;
    }
    return Py_BuildValue("NN", ids, counts);
}

/* ---- the tokens themselves ----------------------------------------------------------------- */

/* A token's text as its UTF-8 in buf (n + PAD bytes): its length, or -1. */
static Py_ssize_t token_bytes(PyObject *token, unsigned char **buf, Py_ssize_t *cap)
{
    if (!PyUnicode_Check(token)) {
        PyErr_Format(PyExc_TypeError, "tokens must be str, got %.100s", Py_TYPE(token)->tp_name);
        return -1;
    }
    PyObject *code = PyUnicode_AsEncodedString(token, "utf-8", "surrogatepass");
    if (!code)
        return -1;
    Py_ssize_t n = PyBytes_GET_SIZE(code);
    if (n + PAD > *cap) {
        if (reserve((void **)buf, n + PAD, 1)) {
            Py_DECREF(code);
            PyErr_NoMemory();
            return -1;
        }
        *cap = n + PAD;
    }
    memcpy(*buf, PyBytes_AS_STRING(code), (size_t)n);
    memset(*buf + n, 0, PAD);
    Py_DECREF(code);
    return n;
}

static int check_idle(Lexicon *lex)
{
    if (lex->broken) {
        PyErr_SetString(PyExc_RuntimeError, "this Lexicon's counts were cut short by an error");
        return -1;
    }
    if (lex->readers || lex->writer) {
        PyErr_SetString(PyExc_RuntimeError, "this Lexicon is in use by another thread");
        return -1;
    }
    return 0;
}

static PyObject *Lexicon_add(Lexicon *lex, PyObject *tokens)
{
    if (!PyList_Check(tokens))
        return PyErr_Format(PyExc_TypeError, "tokens must be a list of str");
    if (check_idle(lex))
        return NULL;
    unsigned char *buf = NULL;
    Py_ssize_t cap = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tokens); i++) {
        Py_ssize_t n = token_bytes(PyList_GET_ITEM(tokens, i), &buf, &cap);
        if (n < 0)
            goto fail;
        if (n == 0) {
            PyErr_SetString(PyExc_ValueError, "'' cannot be a token");
            goto fail;
        }
        uint64_t key = token_key(buf, n);
        Slot *s = probe(lex, key, buf, n);
        if (s->key) {
            PyErr_Format(PyExc_ValueError, "token %R is given twice", PyList_GET_ITEM(tokens, i));
            goto fail;
        }
        Py_ssize_t id = insert(lex, s, key, buf, n);
        if (id < 0) {
            raise_code((int)id);
            goto fail;
        }
    }
    free(buf);
    Py_RETURN_NONE;
fail:
    free(buf);
    return NULL;
}

static PyObject *Lexicon_find(Lexicon *lex, PyObject *tokens)
{
    if (!PyList_Check(tokens))
        return PyErr_Format(PyExc_TypeError, "tokens must be a list of str");
    if (lex->writer)
        return check_idle(lex), NULL;
    PyObject *ids = PyList_New(PyList_GET_SIZE(tokens));
    unsigned char *buf = NULL;
    Py_ssize_t cap = 0;
    for (Py_ssize_t i = 0; ids && i < PyList_GET_SIZE(tokens); i++) {
        Py_ssize_t n = token_bytes(PyList_GET_ITEM(tokens, i), &buf, &cap);
        if (n < 0) {
            Py_CLEAR(ids);
            break;
        }
        Slot *s = probe(lex, token_key(buf, n), buf, n);
        PyObject *id = PyLong_FromSsize_t(s->key && n ? s->id : -1);
        if (!id) {
            Py_CLEAR(ids);
            break;
        }
        PyList_SET_ITEM(ids, i, id);
    }
    free(buf);
    return ids;
}

static PyObject *Lexicon_tokens(Lexicon *lex, PyObject *ids)
{
    PyObject *seq = PySequence_Fast(ids, "ids must be a sequence of ints");
    if (!seq)
        return NULL;
    if (lex->writer) { /* checked after PySequence_Fast, which may run Python code */
        Py_DECREF(seq);
        return check_idle(lex), NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(count);
    for (Py_ssize_t i = 0; out && i < count; i++) {
        Py_ssize_t id = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(seq, i));
        if (id == -1 && PyErr_Occurred()) {
            Py_CLEAR(out);
            break;
        }
        if (id < 0 || id >= lex->n) {
            PyErr_Format(PyExc_IndexError, "no token has id %zd", id);
            Py_CLEAR(out);
            break;
        }
        PyObject *tok = PyUnicode_DecodeUTF8(lex->arena + lex->start[id], lex->len[id],
                                             "surrogatepass");
        if (!tok) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, tok);
    }
    Py_DECREF(seq);
    return out;
}

static PyObject *Lexicon_frequencies(Lexicon *lex, PyObject *Py_UNUSED(ignored))
{
    if (lex->writer)
        return check_idle(lex), NULL;
    PyObject *df = PyByteArray_FromStringAndSize(NULL, lex->n * (Py_ssize_t)sizeof(int64_t));
    PyObject *tf = PyByteArray_FromStringAndSize(NULL, lex->n * (Py_ssize_t)sizeof(int64_t));
    if (!df || !tf) {
        Py_XDECREF(df);
        Py_XDECREF(tf);
        return NULL;
    }
    int64_t *d = (int64_t *)PyByteArray_AS_STRING(df), *t = (int64_t *)PyByteArray_AS_STRING(tf);
    for (Py_ssize_t i = 0; i < lex->n; i++) {
        d[i] = lex->counts[i].df;
        t[i] = lex->counts[i].tf;
    }
    return Py_BuildValue("NN", df, tf);
}

static PyTypeObject LexiconType;

/* Add other's tokens and frequencies, as if its texts had been counted after this one's: its
 * tokens not seen here get the next ids, in its order. Returns each of its ids' id here. */
static PyObject *Lexicon_merge(Lexicon *lex, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &LexiconType))
        return PyErr_Format(PyExc_TypeError, "merge takes a Lexicon");
    Lexicon *other = (Lexicon *)arg;
    if (other == lex)
        return PyErr_Format(PyExc_ValueError, "cannot merge a Lexicon into itself");
    if (check_idle(lex) || check_idle(other))
        return NULL;
    PyObject *map = PyByteArray_FromStringAndSize(NULL, other->n * (Py_ssize_t)sizeof(int32_t));
    if (!map)
        return NULL;
    int32_t *to = (int32_t *)PyByteArray_AS_STRING(map);
    for (Py_ssize_t i = 0; i < other->n; i++) {
        const unsigned char *p = (const unsigned char *)other->arena + other->start[i];
        Py_ssize_t n = other->len[i];
        uint64_t key = token_key(p, n);
        Slot *s = probe(lex, key, p, n);
        Py_ssize_t id = s->key ? s->id : insert(lex, s, key, p, n);
        if (id < 0) {
            lex->broken = 1;
            Py_DECREF(map);
            return raise_code((int)id);
        }
        to[i] = (int32_t)id;
        lex->counts[id].df += other->counts[i].df;
        lex->counts[id].tf += other->counts[i].tf;
    }
    lex->docs += other->docs;
    return map;
}

/* ---- the type ------------------------------------------------------------------------------ */

static Py_ssize_t Lexicon_len(Lexicon *lex)
{
    return lex->n;
}

static PySequenceMethods Lexicon_sequence = {.sq_length = (lenfunc)Lexicon_len};

static PyObject *Lexicon_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Lexicon *lex = (Lexicon *)PyType_GenericNew(type, args, kwds);
    if (lex && grow_table(lex, 12)) { /* every method can rely on a table */
        Py_DECREF(lex);
        return PyErr_NoMemory();
    }
    return (PyObject *)lex;
}

static int Lexicon_init(Lexicon *lex, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"classes", "marks", NULL};
    Py_buffer classes;
    PyObject *marks;
    if (lex->n || lex->readers || lex->writer) {
        PyErr_SetString(PyExc_RuntimeError, "a Lexicon in use cannot be initialised again");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*O!", names, &classes, &PyTuple_Type, &marks))
        return -1;
    if (classes.len != 256) {
        PyBuffer_Release(&classes);
        PyErr_SetString(PyExc_ValueError, "classes must be 256 bytes");
        return -1;
    }
    memcpy(lex->cls, classes.buf, 256);
    PyBuffer_Release(&classes);
    if (PyTuple_GET_SIZE(marks) > MAX_MARKS) {
        PyErr_SetString(PyExc_ValueError, "too many multi-byte marks");
        return -1;
    }
    int n_marks = (int)PyTuple_GET_SIZE(marks);
    lex->n_marks = 0;
    for (int m = 0; m < n_marks; m++) {
        PyObject *code = PyTuple_GET_ITEM(marks, m);
        if (!PyBytes_Check(code) || PyBytes_GET_SIZE(code) < 2 || PyBytes_GET_SIZE(code) > 4) {
            PyErr_SetString(PyExc_ValueError, "marks must be bytes of 2 to 4 bytes");
            return -1;
        }
        lex->mark_len[m] = (int)PyBytes_GET_SIZE(code);
        memcpy(lex->marks[m], PyBytes_AS_STRING(code), (size_t)lex->mark_len[m]);
    }
    lex->n_marks = n_marks;
    return 0;
}

static void Lexicon_dealloc(Lexicon *lex)
{
    free(lex->arena);
    free(lex->start);
    free(lex->len);
    free(lex->counts);
    free(lex->slots);
    Py_TYPE(lex)->tp_free((PyObject *)lex);
}

static PyMethodDef Lexicon_methods[] = {
    {"count", (PyCFunction)(void (*)(void))Lexicon_count, METH_VARARGS | METH_KEYWORDS,
     "count(texts, lowercase, character, add) -> (ids, counts): the int32 id of every token and "
     "the int64 number of tokens of every text, as bytearrays. add: new tokens get the next ids "
     "and every token's document and term frequencies are counted; else unknown tokens get -1."},
    {"add", (PyCFunction)Lexicon_add, METH_O, "add(tokens): give the next ids to new tokens."},
    {"find", (PyCFunction)Lexicon_find, METH_O, "find(tokens) -> ids (-1 if unknown)."},
    {"tokens", (PyCFunction)Lexicon_tokens, METH_O, "tokens(ids) -> the tokens' text."},
    {"frequencies", (PyCFunction)Lexicon_frequencies, METH_NOARGS,
     "frequencies() -> (df, tf) of ids 0..n-1 as int64 bytearrays."},
    {"merge", (PyCFunction)Lexicon_merge, METH_O,
     "merge(other) -> int32 bytearray: other's tokens and counts added after this one's; the id "
     "here of each of other's ids."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LexiconType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "passage._tokens.Lexicon",
    .tp_basicsize = sizeof(Lexicon),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lexicon(classes, marks): token bytes to dense ids, with counts.",
    .tp_new = Lexicon_new,
    .tp_init = (initproc)Lexicon_init,
    .tp_dealloc = (destructor)Lexicon_dealloc,
    .tp_methods = Lexicon_methods,
    .tp_as_sequence = &Lexicon_sequence,
};

/* ---- flat ids to lists --------------------------------------------------------------------- */

static PyObject *to_lists(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer values, offsets;
    PyObject *objects;
    if (!PyArg_ParseTuple(args, "y*y*O", &values, &offsets, &objects))
        return NULL;
    PyObject *out = NULL, *seq = PySequence_Fast(objects, "objects must be a sequence");
    const int32_t *v = values.buf;
    const int64_t *o = offsets.buf;
    Py_ssize_t n_values = values.len / 4, n_lists = offsets.len / 8 - 1;
    if (!seq)
        goto done;
    if (values.len % 4 || offsets.len % 8 || n_lists < 0 || o[0] != 0 || o[n_lists] > n_values) {
        PyErr_SetString(PyExc_ValueError, "values must be int32 and offsets int64, from 0 to at "
                                          "most len(values)");
        goto done;
    }
    PyObject **obj = PySequence_Fast_ITEMS(seq);
    Py_ssize_t n_obj = PySequence_Fast_GET_SIZE(seq);
    if (!(out = PyList_New(n_lists)))
        goto done;
    for (Py_ssize_t i = 0; i < n_lists; i++) {
        Py_ssize_t a = o[i], b = o[i + 1];
        if (b < a || b > n_values) {
            PyErr_SetString(PyExc_ValueError, "offsets must not decrease nor pass len(values)");
            Py_CLEAR(out);
            goto done;
        }
        PyObject *list = PyList_New(b - a);
        if (!list) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, list);
        for (Py_ssize_t k = a; k < b; k++) {
            if ((uint32_t)v[k] >= (uint64_t)n_obj) {
                PyErr_Format(PyExc_IndexError, "value %d has no object (%zd objects)", v[k],
                             n_obj);
                Py_CLEAR(out);
                goto done;
            }
            PyList_SET_ITEM(list, k - a, Py_NewRef(obj[v[k]]));
        }
    }
done:
    Py_XDECREF(seq);
    PyBuffer_Release(&values);
    PyBuffer_Release(&offsets);
    return out;
}

static PyMethodDef module_methods[] = {
    {"to_lists", to_lists, METH_VARARGS,
     "to_lists(values, offsets, objects) -> lists: [objects[v] for v in values[a:b]] for each "
     "pair of consecutive offsets (values int32, offsets int64)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "passage._tokens",
    .m_doc = "The Tokenizer's compiled engine (see passage/_tokenizer/compiled.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__tokens(void)
{
    if (PyType_Ready(&LexiconType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&LexiconType);
    if (PyModule_AddObject(m, "Lexicon", (PyObject *)&LexiconType) < 0) {
        Py_DECREF(&LexiconType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
