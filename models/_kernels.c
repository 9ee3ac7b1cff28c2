/* Compiled kernels of the pure core: the same arithmetic as their Python versions, in the same
 * order, so every result is the same float (tests/unit/test_kernels.py compares them).
 *
 * complements_scan: the inner loop of BoughtTogether.complements (models/bought_together.py).
 * A cart decision reads a few hundred neighbour counts of its anchors; in Python each costs a
 * dict lookup, a list and a handful of float objects, here a few arithmetic operations.
 * count_pairs: the pair counting of BoughtTogether._count_pairs, O(lines²) an order, into
 * PairRow rows: a counted anchor's pairs in arrays (product numbers and raw counts), in about a
 * third of a dict's memory, in the same order.
 * complements_rows: complements_scan with the evidence of each candidate computed and its
 * Complement made here too (the Python loop around the scan cost almost as much as the scan).
 * ranking_rows: the learned order's feature rows of a decision's candidates (40 rows of 13).
 * round_to: Python's round(x, n) of a float, without its decimal conversion.
 * cross_sell_rows: complements_rows made into a decision's cross-sell candidates (the anchors'
 * families left out), the loop of candidates.cross_sells.
 * PairRow: a counted anchor's row in arrays, cut to its strongest pairs in place.
 * eligible_candidates: OfferPolicy._eligible's loop, the price cap and hygiene rules of a
 * decision's candidates, best first, until enough are eligible.
 * candidate_values: OfferPolicy._value_function's values (and the acceptance scorer's P(accept))
 * of a decision's eligible candidates, a list at once.
 * repeat_blend: candidates.repeat_buys and blend in one pass (the shopper's past purchases
 * scored by repeat rate and merged into the complements).
 * category_upsells: candidates.upsells' same-category upgrades (a long-tail category's price
 * band holds a hundred or more), scored, reasoned and ranked in one pass.
 * content_rows: candidates.content_fallback's candidates (up to three related categories of
 * 200 products each, scored, the best ranked and made into candidates).
 *
 * Built by the project's own install (pyproject.toml, an optional extension): without a C
 * compiler the install still works and the core runs its Python version.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The numbering of product ids: number -> id (owned, interned), and an open-addressing map
 * id -> number + 1 (0 empty) over them, grown at two thirds full. */
static PyObject **id_objs = NULL;
static uint32_t *id_slots = NULL;
static size_t id_count = 0, id_cap = 0, id_mask = 0;

/* Whether the stored key is key. Interned strings are equal only when they are the same object. */
static int same_key(PyObject *stored, PyObject *key, Py_hash_t hash) {
    if (stored == key) return 1;
    if (PyUnicode_CheckExact(stored) && PyUnicode_CheckExact(key)) {
        if (PyUnicode_CHECK_INTERNED(stored) && PyUnicode_CHECK_INTERNED(key)) return 0;
    }
    Py_hash_t other = PyObject_Hash(stored);
    if (other == -1) return -1;
    if (other != hash) return 0;
    return PyObject_RichCompareBool(stored, key, Py_EQ);
}

/* The number of key (-1: none yet, with *slot where it would go; -2 on error). */
static Py_ssize_t id_find(PyObject *key, Py_hash_t hash, size_t *slot) {
    if (!id_slots) { *slot = 0; return -1; }
    size_t j = (size_t)hash & id_mask;
    for (;;) {
        uint32_t v = id_slots[j];
        if (v == 0) { *slot = j; return -1; }
        int eq = same_key(id_objs[v - 1], key, hash);
        if (eq < 0) return -2;
        if (eq) return (Py_ssize_t)v - 1;
        j = (j + 1) & id_mask;
    }
}

static int id_grow(void) {
    size_t cap = id_cap ? id_cap * 2 : 1024, n = 2048;
    while (n * 2 < cap * 3) n <<= 1;
    if (cap >= UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "more than 4 billion product ids in pair rows");
        return -1;
    }
    PyObject **objs = PyMem_Realloc(id_objs, sizeof(PyObject *) * cap);
    if (!objs) { PyErr_NoMemory(); return -1; }
    id_objs = objs;
    uint32_t *slots = PyMem_Calloc(n, sizeof(uint32_t));
    if (!slots) { PyErr_NoMemory(); return -1; }
    for (size_t i = 0; i < id_count; i++) {
        size_t j = (size_t)PyObject_Hash(id_objs[i]) & (n - 1);   /* hashable: it was hashed before */
        while (slots[j]) j = (j + 1) & (n - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    PyMem_Free(id_slots);
    id_slots = slots;
    id_mask = n - 1;
    id_cap = cap;
    return 0;
}

/* An interned str, or the key itself (a new reference either way). */
static PyObject *interned(PyObject *key) {
    Py_INCREF(key);
    if (PyUnicode_CheckExact(key)) PyUnicode_InternInPlace(&key);
    return key;
}

/* The number of key, numbered now if it had none; -1 on error. */
static Py_ssize_t id_of(PyObject *key) {
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) return -1;
    size_t slot;
    Py_ssize_t n = id_find(key, hash, &slot);
    if (n != -1) return n == -2 ? -1 : n;
    if (id_count >= id_cap) {
        if (id_grow() < 0) return -1;
        id_find(key, hash, &slot);
    }
    id_objs[id_count] = interned(key);
    id_slots[slot] = (uint32_t)(id_count + 1);
    return (Py_ssize_t)id_count++;
}

typedef struct {
    PyObject *pid;      /* borrowed: a key of a row, or the numbering's id, alive for the call */
    uint32_t id;        /* its product number */
    PyObject *anchor;   /* borrowed: the strongest anchor so far */
    double score;       /* sum of the anchors' parts */
    double best;        /* the largest part */
    double both;        /* the strongest anchor's pair count */
    double anchor_na;   /* the strongest anchor's own count (items[anchor]) */
    Py_ssize_t order;   /* first counted: ties keep this order, as Python's stable sort does */
    double nb;          /* the product's own count (items[pid]), read once per scan */
    int counted;        /* a pair of it passed the filters: it is a candidate */
} Entry;

/* A scan's entries, found by product number: entry_gen[number] == scan_gen marks a product with
 * an entry in this scan, at entry_at[number] (arrays over every product number, grown with the
 * numbering, reused by every scan: no hashing, no clearing). */
typedef struct {
    Entry *entries;
    Py_ssize_t size, cap;
    Py_ssize_t counted; /* entries that are candidates (the others only hold their nb) */
} Acc;

static uint32_t *entry_gen = NULL, scan_gen = 0;
static Py_ssize_t *entry_at = NULL;
static size_t entry_cap = 0;
static int scanning = 0;

/* The entry arrays grown to cover number id. */
static int entries_cover(size_t id) {
    if (id < entry_cap) return 0;
    size_t cap = entry_cap ? entry_cap : 1024;
    while (cap <= id) cap *= 2;
    uint32_t *gen = PyMem_Realloc(entry_gen, sizeof(uint32_t) * cap);
    if (!gen) { PyErr_NoMemory(); return -1; }
    entry_gen = gen;
    memset(entry_gen + entry_cap, 0, sizeof(uint32_t) * (cap - entry_cap));
    Py_ssize_t *at = PyMem_Realloc(entry_at, sizeof(Py_ssize_t) * cap);
    if (!at) { PyErr_NoMemory(); return -1; }
    entry_at = at;
    entry_cap = cap;
    return 0;
}

static int acc_init(Acc *acc, Py_ssize_t hint) {
    acc->entries = NULL;                /* acc_free is then a no-op */
    if (scanning) {                     /* a scan within a scan would share the marks */
        PyErr_SetString(PyExc_RuntimeError, "a complements scan is already running");
        return -1;
    }
    acc->cap = hint;
    acc->size = 0;
    acc->counted = 0;
    acc->entries = PyMem_Malloc(sizeof(Entry) * acc->cap);
    if (!acc->entries) {
        PyErr_NoMemory();
        return -1;
    }
    if (++scan_gen == 0) {              /* wrapped: every mark is stale */
        if (entry_gen) memset(entry_gen, 0, sizeof(uint32_t) * entry_cap);
        scan_gen = 1;
    }
    scanning = 1;
    return 0;
}

static void acc_free(Acc *acc) {
    if (acc->entries) scanning = 0;
    PyMem_Free(acc->entries);
    acc->entries = NULL;
}

static int acc_grow(Acc *acc) {
    Entry *entries = PyMem_Realloc(acc->entries, sizeof(Entry) * (size_t)(acc->cap * 2));
    if (!entries) { PyErr_NoMemory(); return -1; }
    acc->entries = entries;
    acc->cap *= 2;
    return 0;
}

typedef struct {
    PyObject *items;
    double na, weight, orders, exponent, min_both, min_lift;
    PyObject *anchor;
} Scan;

/* Largest first, ties in first-seen order: Python's stable sort with reverse=True. */
static int descending(double x, double y, Py_ssize_t x_order, Py_ssize_t y_order) {
    if (x > y) return -1;
    if (x < y) return 1;
    return x_order < y_order ? -1 : (x_order > y_order);
}

/* One pair of an anchor's row, exactly as the Python loop does it. A product's own count is
 * read from items the first time one of its pairs passes the support filter and kept in its
 * entry (a cart's anchors share most neighbours: most pairs read are of products seen before),
 * so the big items dict is read once per product instead of once per pair. */
static int scan_pair(Acc *acc, const Scan *s, uint32_t id, PyObject *pid, double both) {
    if (both < s->min_both) return 0;
    Entry *e;
    if (id < entry_cap && entry_gen[id] == scan_gen) {
        e = &acc->entries[entry_at[id]];
    } else {
        PyObject *nb_obj = PyDict_GetItemWithError(s->items, pid);
        if (!nb_obj) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, pid);
            return -1;
        }
        double nb = PyFloat_AsDouble(nb_obj);
        if (nb == -1.0 && PyErr_Occurred()) return -1;
        if (acc->size >= acc->cap && acc_grow(acc) < 0) return -1;
        if (entries_cover(id) < 0) return -1;
        Py_ssize_t i = acc->size++;
        acc->entries[i] = (Entry){pid, id, NULL, 0.0, 0.0, 0.0, 0.0, 0, nb, 0};
        entry_gen[id] = scan_gen;
        entry_at[id] = i;
        e = &acc->entries[i];
    }
    double den = s->na * e->nb;
    if (den == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return -1;
    }
    double lift = both * s->orders / den;
    if (lift <= s->min_lift) return 0;
    /* lift ** 0 is 1.0 in Python and in C alike */
    double part = s->weight * (both / s->na) * pow(lift, s->exponent);
    if (e->counted) {
        e->score += part;
        if (part > e->best) { e->best = part; e->anchor = s->anchor; e->both = both; e->anchor_na = s->na; }
        return 0;
    }
    e->counted = 1;
    e->order = acc->counted++;
    e->score = e->best = part;
    e->anchor = s->anchor;
    e->both = both;
    e->anchor_na = s->na;
    return 0;
}

/* A pair of a row keyed by product id (a dict or a SharedRow): the id numbered first. */
static int scan_keyed_pair(Acc *acc, const Scan *s, PyObject *pid, double both) {
    if (both < s->min_both) return 0;
    Py_ssize_t id = id_of(pid);
    if (id < 0) return -1;
    return scan_pair(acc, s, (uint32_t)id, pid, both);
}

/* A candidate's place in the ranking: larger score first, ties in first-counted order (orders
 * are unique, so every correct sort gives the one order Python's stable sort gives). */
typedef struct {
    double score;
    Py_ssize_t order, at;
} Key;

static inline int key_before(const Key *a, const Key *b) {
    return a->score > b->score || (!(a->score < b->score) && a->order < b->order);
}

static void key_swap(Key *a, Key *b) {
    Key t = *a;
    *a = *b;
    *b = t;
}

/* keys[lo..hi] partitioned around a median of three: the pivot's final position. */
static Py_ssize_t key_partition(Key *keys, Py_ssize_t lo, Py_ssize_t hi) {
    Py_ssize_t mid = lo + (hi - lo) / 2;
    if (key_before(&keys[mid], &keys[lo])) key_swap(&keys[mid], &keys[lo]);
    if (key_before(&keys[hi], &keys[lo])) key_swap(&keys[hi], &keys[lo]);
    if (key_before(&keys[hi], &keys[mid])) key_swap(&keys[hi], &keys[mid]);
    key_swap(&keys[mid], &keys[hi]);                        /* the median as the pivot, at hi */
    Py_ssize_t store = lo;
    for (Py_ssize_t i = lo; i < hi; i++)
        if (key_before(&keys[i], &keys[hi])) key_swap(&keys[i], &keys[store++]);
    key_swap(&keys[store], &keys[hi]);
    return store;
}

/* keys[lo..hi] with their first (up to) top - lo in ranked order (a partial quicksort). */
static void key_sort(Key *keys, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t top) {
    while (hi - lo > 12) {
        Py_ssize_t p = key_partition(keys, lo, hi);
        if (p + 1 < top) key_sort(keys, p + 1, hi, top);    /* the right side holds some of the top */
        hi = p - 1;
    }
    for (Py_ssize_t i = lo + 1; i <= hi; i++) {              /* insertion sort of the short rest */
        Key k = keys[i];
        Py_ssize_t j = i;
        for (; j > lo && key_before(&k, &keys[j - 1]); j--) keys[j] = keys[j - 1];
        keys[j] = k;
    }
}

/* The best limit candidates (all with limit 0) to the front of the entries, best first: how many
 * (the lookup marks are stale after). */
static Py_ssize_t acc_ranked(Acc *acc, Py_ssize_t limit) {
    Py_ssize_t n = 0;
    Key *keys = PyMem_Malloc(sizeof(Key) * (size_t)(acc->size ? acc->size : 1));
    Entry *ranked = keys ? PyMem_Malloc(sizeof(Entry) * (size_t)(acc->size ? acc->size : 1)) : NULL;
    if (!ranked) {
        PyMem_Free(keys);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < acc->size; i++)
        if (acc->entries[i].counted) keys[n++] = (Key){acc->entries[i].score, acc->entries[i].order, i};
    Py_ssize_t top = limit > 0 && limit < n ? limit : n;
    if (n > 0) key_sort(keys, 0, n - 1, top);
    for (Py_ssize_t i = 0; i < top; i++) ranked[i] = acc->entries[keys[i].at];
    PyMem_Free(keys);
    PyMem_Free(acc->entries);
    acc->entries = ranked;
    acc->size = top;
    return top;
}

static int scan_dict_row(Acc *acc, const Scan *s, PyObject *row) {
    Py_ssize_t pos = 0;
    PyObject *pid, *value;
    while (PyDict_Next(row, &pos, &pid, &value)) {
        double both = PyFloat_AsDouble(value);
        if (both == -1.0 && PyErr_Occurred()) return -1;
        if (scan_keyed_pair(acc, s, pid, both) < 0) return -1;
    }
    return 0;
}

/* A SharedRow: its ids (a tuple) and counts (an array of doubles). */
static int scan_shared_row(Acc *acc, const Scan *s, PyObject *row) {
    int rc = -1;
    PyObject *ids = PyObject_GetAttrString(row, "ids");
    PyObject *counts = ids ? PyObject_GetAttrString(row, "counts") : NULL;
    Py_buffer view = {0};
    if (!counts) goto done;
    if (!PyTuple_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "a shared row's ids must be a tuple");
        goto done;
    }
    if (PyObject_GetBuffer(counts, &view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) goto done;
    if (!view.format || strcmp(view.format, "d") != 0 ||
            view.len / (Py_ssize_t)sizeof(double) != PyTuple_GET_SIZE(ids)) {
        PyErr_SetString(PyExc_TypeError, "a shared row's counts must be doubles, one per id");
        goto release;
    }
    const double *values = view.buf;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(ids); i++)
        if (scan_keyed_pair(acc, s, PyTuple_GET_ITEM(ids, i), values[i]) < 0) goto release;
    rc = 0;
release:
    PyBuffer_Release(&view);
done:
    Py_XDECREF(ids);
    Py_XDECREF(counts);
    return rc;
}

/* ---- PairRow: a counted anchor's row in arrays -------------------------------------------
 * What a dict of product id -> float does for BoughtTogether's counted rows, in about a third of
 * the memory (a dict takes 16 bytes an entry, its index, and a float object of 24 bytes for every
 * pair seen twice or more): the pairs in insertion order as a product number (4 bytes) and a raw
 * double each, with an open-addressing index of 1, 2 or 4 bytes a slot over them. Product ids
 * are numbered once per process (interned, kept by the numbering), so a row holds no object of
 * its own per pair and its lookups compare numbers. Iteration order is insertion order, and
 * cut() keeps what a stable sort keeps, so a row reads exactly as the dict did. */

typedef struct {
    PyObject_HEAD
    uint32_t *ids;      /* product numbers, in insertion order */
    double *counts;
    void *index;        /* entry index + 1 per slot, 0 empty; width bytes a slot */
    Py_ssize_t size, cap, mask;
    int width;
} PairRowObject;

static PyTypeObject PairRowType;

static Py_ssize_t slot_get(const PairRowObject *r, size_t j) {
    switch (r->width) {
    case 1: return ((const uint8_t *)r->index)[j];
    case 2: return ((const uint16_t *)r->index)[j];
    default: return ((const uint32_t *)r->index)[j];
    }
}

static void slot_set(PairRowObject *r, size_t j, Py_ssize_t v) {
    switch (r->width) {
    case 1: ((uint8_t *)r->index)[j] = (uint8_t)v; break;
    case 2: ((uint16_t *)r->index)[j] = (uint16_t)v; break;
    default: ((uint32_t *)r->index)[j] = (uint32_t)v; break;
    }
}

static size_t id_hash(uint32_t id) {
    return (size_t)(id * 2654435761u);          /* Knuth's multiplicative hash: numbers spread */
}

/* The entry of product number id (its index), or -1 with *slot the free slot where it would go. */
static Py_ssize_t row_find(const PairRowObject *r, uint32_t id, size_t *slot) {
    if (!r->index) { *slot = 0; return -1; }
    size_t j = id_hash(id) & (size_t)r->mask;
    for (;;) {
        Py_ssize_t v = slot_get(r, j);
        if (v == 0) { *slot = j; return -1; }
        if (r->ids[v - 1] == id) return v - 1;
        j = (j + 1) & (size_t)r->mask;
    }
}

/* A new index for room entries: at most three quarters of its slots used (a row's lookups are
 * mostly of products it holds, which linear probing finds in a slot or two). */
static int row_reindex(PairRowObject *r, Py_ssize_t room) {
    Py_ssize_t n = 8;
    while (n * 3 < room * 4) n <<= 1;
    int width = n <= 256 ? 1 : n <= 65536 ? 2 : 4;
    void *index = PyMem_Calloc((size_t)n, (size_t)width);
    if (!index) { PyErr_NoMemory(); return -1; }
    PyMem_Free(r->index);
    r->index = index;
    r->mask = n - 1;
    r->width = width;
    for (Py_ssize_t i = 0; i < r->size; i++) {
        size_t j = id_hash(r->ids[i]) & (size_t)r->mask;
        while (slot_get(r, j)) j = (j + 1) & (size_t)r->mask;
        slot_set(r, j, i + 1);
    }
    return 0;
}

static int row_resize(PairRowObject *r, Py_ssize_t cap) {
    size_t n = (size_t)(cap ? cap : 1);
    uint32_t *ids = PyMem_Realloc(r->ids, sizeof(uint32_t) * n);
    if (!ids) { PyErr_NoMemory(); return -1; }
    r->ids = ids;
    double *counts = PyMem_Realloc(r->counts, sizeof(double) * n);
    if (!counts) { PyErr_NoMemory(); return -1; }
    r->counts = counts;
    r->cap = cap;
    return row_reindex(r, cap);
}

/* Adds count to product number id's pair (sets it when add is 0, as dict assignment does),
 * appending a new pair at the end. */
static int row_add(PairRowObject *r, uint32_t id, double count, int add) {
    size_t slot;
    Py_ssize_t i = row_find(r, id, &slot);
    if (i >= 0) {
        r->counts[i] = add ? r->counts[i] + count : count;
        return 0;
    }
    if (r->size >= r->cap) {
        if (row_resize(r, r->cap + r->cap / 4 + 4) < 0) return -1;
        row_find(r, id, &slot);
    }
    r->ids[r->size] = id;
    r->counts[r->size] = count;
    slot_set(r, slot, ++r->size);
    return 0;
}

typedef struct {
    double value;
    Py_ssize_t order;
} Strength;

static int by_strength(const void *a, const void *b) {
    const Strength *x = a, *y = b;
    return descending(x->value, y->value, x->order, y->order);
}

/* Keeps the keep largest counts, largest first, ties in the row's order (a stable sort's). */
static int row_cut(PairRowObject *r, Py_ssize_t keep) {
    Py_ssize_t n = r->size;
    if (keep < 0) keep = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (r->counts[i] != r->counts[i]) {
            PyErr_SetString(PyExc_ValueError, "a pair count is NaN");
            return -1;
        }
    Py_ssize_t m = keep < n ? keep : n;
    Strength *order = PyMem_Malloc(sizeof(Strength) * (size_t)(n ? n : 1));
    uint32_t *ids = PyMem_Malloc(sizeof(uint32_t) * (size_t)(m ? m : 1));
    double *counts = PyMem_Malloc(sizeof(double) * (size_t)(m ? m : 1));
    if (!order || !ids || !counts) {
        PyMem_Free(order);
        PyMem_Free(ids);
        PyMem_Free(counts);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) order[i] = (Strength){r->counts[i], i};
    qsort(order, (size_t)n, sizeof(Strength), by_strength);
    for (Py_ssize_t i = 0; i < m; i++) {
        ids[i] = r->ids[order[i].order];
        counts[i] = r->counts[order[i].order];
    }
    PyMem_Free(order);
    PyMem_Free(r->ids);
    PyMem_Free(r->counts);
    r->ids = ids;
    r->counts = counts;
    r->size = r->cap = m;
    return row_reindex(r, m);
}

static int row_fill(PairRowObject *r, PyObject *items) {
    PyObject *it;
    Py_ssize_t hint = PyObject_LengthHint(items, 0);
    if (hint < 0) return -1;
    if (hint > 0 && row_resize(r, hint) < 0) return -1;
    if (PyDict_Check(items)) {
        PyObject *view = PyDict_Items(items);
        if (!view) return -1;
        it = PyObject_GetIter(view);
        Py_DECREF(view);
    } else {
        it = PyObject_GetIter(items);
    }
    if (!it) return -1;
    PyObject *item;
    while ((item = PyIter_Next(it))) {
        PyObject *pair = PySequence_Tuple(item);
        Py_DECREF(item);
        if (!pair) break;
        int rc = -1;
        if (PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "a row's items are (product id, count) pairs");
        } else {
            double count = PyFloat_AsDouble(PyTuple_GET_ITEM(pair, 1));
            Py_ssize_t id = count == -1.0 && PyErr_Occurred() ? -1 : id_of(PyTuple_GET_ITEM(pair, 0));
            if (id >= 0) rc = row_add(r, (uint32_t)id, count, 0);
        }
        Py_DECREF(pair);
        if (rc < 0) break;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return -1;
    return r->cap > r->size ? row_resize(r, r->size) : 0;     /* no room kept: a row is made whole */
}

static PyObject *PairRow_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *items = NULL;
    static char *kwlist[] = {"items", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:PairRow", kwlist, &items)) return NULL;
    PairRowObject *r = (PairRowObject *)type->tp_alloc(type, 0);
    if (!r) return NULL;
    if (items && row_fill(r, items) < 0) {
        Py_DECREF(r);
        return NULL;
    }
    return (PyObject *)r;
}

static void PairRow_dealloc(PairRowObject *r) {
    PyMem_Free(r->ids);
    PyMem_Free(r->counts);
    PyMem_Free(r->index);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static Py_ssize_t PairRow_len(PairRowObject *r) {
    return r->size;
}

static PyObject *PairRow_get(PairRowObject *r, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(product_id, default=None)");
        return NULL;
    }
    Py_hash_t hash = PyObject_Hash(args[0]);
    if (hash == -1) return NULL;
    size_t slot;
    Py_ssize_t id = id_find(args[0], hash, &slot), i = -1;
    if (id == -2) return NULL;
    if (id >= 0) i = row_find(r, (uint32_t)id, &slot);
    if (i >= 0) return PyFloat_FromDouble(r->counts[i]);
    PyObject *dflt = nargs == 2 ? args[1] : Py_None;
    Py_INCREF(dflt);
    return dflt;
}

static PyObject *PairRow_items(PairRowObject *r, PyObject *unused) {
    (void)unused;
    PyObject *out = PyList_New(r->size);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < r->size; i++) {
        PyObject *count = PyFloat_FromDouble(r->counts[i]);
        PyObject *pair = count ? PyTuple_Pack(2, id_objs[r->ids[i]], count) : NULL;
        Py_XDECREF(count);
        if (!pair) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

static PyObject *PairRow_cut(PairRowObject *r, PyObject *arg) {
    Py_ssize_t keep = PyLong_AsSsize_t(arg);
    if (keep == -1 && PyErr_Occurred()) return NULL;
    if (row_cut(r, keep) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *PairRow_sizeof(PairRowObject *r, PyObject *unused) {
    (void)unused;
    size_t n = sizeof(PairRowObject) + (sizeof(uint32_t) + sizeof(double)) * (size_t)r->cap;
    if (r->index) n += (size_t)(r->mask + 1) * (size_t)r->width;
    return PyLong_FromSize_t(n);
}

static PyMethodDef PairRow_methods[] = {
    {"get", (PyCFunction)(void (*)(void))PairRow_get, METH_FASTCALL,
     "get(product_id, default=None): the pair's count (a float), or default."},
    {"items", (PyCFunction)PairRow_items, METH_NOARGS,
     "items(): the (product id, count) pairs, in the row's order."},
    {"cut", (PyCFunction)PairRow_cut, METH_O,
     "cut(keep): keep the keep largest counts, largest first, ties in the row's order."},
    {"__sizeof__", (PyCFunction)PairRow_sizeof, METH_NOARGS, "Bytes held, arrays included."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods PairRow_as_sequence = {
    .sq_length = (lenfunc)PairRow_len,
};

PyDoc_STRVAR(PairRow_doc,
"PairRow(items=())\n"
"--\n\n"
"A counted anchor's pair counts (product id -> float) in arrays: what a dict of them reads as\n"
"(get, items, len, insertion order), in about a third of the memory. items: a dict or\n"
"(product id, count) pairs.");

static PyTypeObject PairRowType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "nextoffer.models._kernels.PairRow",
    .tp_basicsize = sizeof(PairRowObject),
    .tp_dealloc = (destructor)PairRow_dealloc,
    .tp_as_sequence = &PairRow_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PairRow_doc,
    .tp_methods = PairRow_methods,
    .tp_new = PairRow_new,
};

static int scan_pair_row(Acc *acc, const Scan *s, PairRowObject *row) {
    for (Py_ssize_t i = 0; i < row->size; i++)
        if (scan_pair(acc, s, row->ids[i], id_objs[row->ids[i]], row->counts[i]) < 0) return -1;
    return 0;
}


PyDoc_STRVAR(complements_scan_doc,
"complements_scan(anchors, items, pairs, orders, exponent, min_both, min_lift, limit)\n"
"--\n\n"
"The candidates of BoughtTogether.complements, best first: (product id, summed score,\n"
"strongest anchor, its pair count) for each, at most limit of them (all when limit is 0).");

/* Scans the anchors' rows into acc (the loop both entry points share). */
static int scan_anchors(Acc *acc, Scan *s, PyObject *anchors, PyObject *pairs) {
    PyObject *seq = PySequence_Fast(anchors, "anchors must be a sequence of (product id, weight)");
    if (!seq) return -1;
    int rc = -1;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, k), *anchor, *weight;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "an anchor is a (product id, weight) tuple");
            goto done;
        }
        anchor = PyTuple_GET_ITEM(pair, 0);
        weight = PyTuple_GET_ITEM(pair, 1);
        PyObject *na_obj = PyDict_GetItemWithError(s->items, anchor);
        if (!na_obj) {
            if (PyErr_Occurred()) goto done;
            continue;
        }
        int truth = PyObject_IsTrue(na_obj);
        if (truth < 0) goto done;
        if (!truth) continue;
        PyObject *row = PyDict_GetItemWithError(pairs, anchor);
        if (!row) {
            if (PyErr_Occurred()) goto done;
            continue;
        }
        s->na = PyFloat_AsDouble(na_obj);
        s->weight = PyFloat_AsDouble(weight);
        if (PyErr_Occurred()) goto done;
        s->anchor = anchor;
        if (Py_IS_TYPE(row, &PairRowType)) {
            if (scan_pair_row(acc, s, (PairRowObject *)row) < 0) goto done;
        } else if (PyDict_CheckExact(row)) {
            if (scan_dict_row(acc, s, row) < 0) goto done;
        } else if (scan_shared_row(acc, s, row) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    Py_DECREF(seq);
    return rc;
}

/* The anchors' rows of items' products scanned into acc (which the caller frees, whatever
 * happened), best first: how many of them to take (limit, or all), -1 on error. */
static Py_ssize_t ranked_scan(Acc *acc, Scan *s, PyObject *items, PyObject *anchors, PyObject *pairs,
                              Py_ssize_t limit) {
    s->items = items;
    if (acc_init(acc, 256) < 0 || scan_anchors(acc, s, anchors, pairs) < 0) return -1;
    return acc_ranked(acc, limit);
}

static PyObject *complements_scan(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *anchors, *items, *pairs;
    Scan s;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "OO!O!ddddn:complements_scan", &anchors, &PyDict_Type, &items,
                          &PyDict_Type, &pairs, &s.orders, &s.exponent, &s.min_both,
                          &s.min_lift, &limit))
        return NULL;
    Acc acc;
    PyObject *out = NULL;
    Py_ssize_t n = ranked_scan(&acc, &s, items, anchors, pairs, limit);
    if (n < 0) goto done;
    out = PyList_New(n);
    if (!out) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        Entry *e = &acc.entries[i];
        PyObject *t = Py_BuildValue("(OdOd)", e->pid, e->score, e->anchor, e->both);
        if (!t) { Py_CLEAR(out); goto done; }
        PyList_SET_ITEM(out, i, t);
    }
done:
    acc_free(&acc);
    return out;
}

/* What complements_rows and cross_sell_rows check of their arguments: cls a tuple type, and the
 * divisions Python would make possible. */
static int check_rows(PyTypeObject *cls, double total_weight, double scale) {
    if (!PyType_IsSubtype(cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a tuple type");
        return -1;
    }
    if (total_weight == 0.0 || scale == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(complements_rows_doc,
"complements_rows(anchors, items, pairs, orders, exponent, min_both, min_lift, limit,\n"
"                 total_weight, scale, cls)\n"
"--\n\n"
"BoughtTogether.complements in one call: the candidates of complements_scan, each as a cls\n"
"(a tuple type: Complement) of (product id, score / total_weight, strongest anchor, its\n"
"attachment rate, its lift, its support as of scale), with Python's arithmetic.");

static PyObject *complements_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *anchors, *items, *pairs;
    PyTypeObject *cls;
    Scan s;
    Py_ssize_t limit;
    double total_weight, scale;
    if (!PyArg_ParseTuple(args, "OO!O!ddddnddO!:complements_rows", &anchors, &PyDict_Type, &items,
                          &PyDict_Type, &pairs, &s.orders, &s.exponent, &s.min_both,
                          &s.min_lift, &limit, &total_weight, &scale, &PyType_Type, &cls))
        return NULL;
    if (check_rows(cls, total_weight, scale) < 0) return NULL;
    Acc acc;
    PyObject *out = NULL;
    Py_ssize_t n = ranked_scan(&acc, &s, items, anchors, pairs, limit);
    if (n < 0) goto done;
    out = PyList_New(n);
    if (!out) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        Entry *e = &acc.entries[i];
        double na = e->anchor_na, nb = e->nb;      /* items[anchor] and items[pid], read by the scan */
        /* as complements() computes them: score / total, both / na, both * orders / (na * nb),
         * both / scale (both and na are never 0 here: the scan kept only supported pairs) */
        PyObject *t = cls->tp_alloc(cls, 6);
        if (!t) { Py_CLEAR(out); goto done; }
        PyObject *fields[6] = {e->pid, PyFloat_FromDouble(e->score / total_weight), e->anchor,
                               PyFloat_FromDouble(e->both / na),
                               PyFloat_FromDouble(e->both * s.orders / (na * nb)),
                               PyFloat_FromDouble(e->both / scale)};
        Py_INCREF(e->pid);
        Py_INCREF(e->anchor);
        for (int f = 0; f < 6; f++) {
            if (!fields[f]) {
                for (int g = 0; g < 6; g++) Py_XDECREF(fields[g]);
                Py_DECREF(t);
                Py_CLEAR(out);
                PyErr_NoMemory();
                goto done;
            }
        }
        for (int f = 0; f < 6; f++) PyTuple_SET_ITEM(t, f, fields[f]);
        PyList_SET_ITEM(out, i, t);
    }
done:
    acc_free(&acc);
    return out;
}


PyDoc_STRVAR(round_to_doc,
"round_to(x, ndigits)\n"
"--\n\n"
"round(x, ndigits): for a float x and 0 <= ndigits <= 15 the same float without the decimal\n"
"conversion Python's round makes (a decision rounds a few hundred scores); else round's.");

/* Python's round(x, n) rounds the exact binary value of x to n decimals (ties to even) and
 * returns the double nearest that decimal. x * 10^n is within half an ulp of the exact product,
 * so unless that product is within a few ulps of a half, its nearest integer k is the exact
 * product's too, and k / 10^n (both exact doubles, one correctly rounded division) is the double
 * nearest k * 10^-n. Near a half, for large or non-finite values: Python's own round. */
static int round_fast(double x, long n, double *out) {
    static const double tens[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                  1e12, 1e13, 1e14, 1e15};
    if (n >= 0 && n <= 15 && isfinite(x)) {
        double y = x * tens[n];
        double ay = fabs(y);
        if (ay < 4503599627370496.0) {                 /* 2^52: y's fraction is exact */
            double f = ay - floor(ay);
            if (fabs(f - 0.5) > ay * 1e-15 + 1e-300) {
                *out = nearbyint(y) / tens[n];
                return 1;
            }
        }
    }
    return 0;                                           /* near a half, large or not finite */
}

static PyObject *round_to(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "round_to(x, ndigits) takes a number and an int");
        return NULL;
    }
    if (!PyFloat_CheckExact(args[0]))                   /* an int (a sigmoid's 0 or 1), ...: round's */
        return PyObject_CallMethod(args[0], "__round__", "O", args[1]);
    long n = PyLong_AsLong(args[1]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    double y;
    if (round_fast(PyFloat_AS_DOUBLE(args[0]), n, &y)) return PyFloat_FromDouble(y);
    return PyObject_CallMethod(args[0], "__round__", "O", args[1]);
}

/* round_to of a double, as a double (-1 with an exception set). */
static int round_double(double x, long n, double *out) {
    if (round_fast(x, n, out)) return 0;
    PyObject *f = PyFloat_FromDouble(x);
    PyObject *r = f ? PyObject_CallMethod(f, "__round__", "l", n) : NULL;
    Py_XDECREF(f);
    if (!r) return -1;
    *out = PyFloat_AsDouble(r);
    Py_DECREF(r);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* A float field of a candidate (a tuple), or -1 with an exception set. */
static int as_double(PyObject *obj, double *out) {
    *out = PyFloat_AsDouble(obj);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

PyDoc_STRVAR(ranking_rows_doc,
"ranking_rows(candidates, purchases, orders, orders_index, orders_values, anchor_ts, now,\n"
"             age_span, sales_index=None, sales_values=None, sales_scale=1.0)\n"
"--\n\n"
"PairwiseRanker.features' rows, as a bytearray of float64 (one row of 13 per candidate):\n"
"candidates are Candidate tuples, purchases the shopper's product -> (times, last time),\n"
"orders_index and orders_values RepeatPurchases' orders per product (product -> position in a\n"
"buffer of doubles, RepeatPurchases.index and order_counts()). The recent-sales column\n"
"holds the candidate's recent sales as Counts.values_of reads them (sales_index: product ->\n"
"position in sales_values, a buffer of doubles, divided by sales_scale), 0 without them: the\n"
"caller takes their log.");

/* math.log1p's domain: it raises where C's returns -inf or NaN. */
static int log1p_of(double v, double *out) {
    if (v <= -1.0) {
        PyErr_SetString(PyExc_ValueError, "math domain error");
        return -1;
    }
    *out = log1p(v);
    return 0;
}

/* Candidate fields (models/candidates.py): product_id, score, why, price, source, bought, history */
enum { C_PID = 0, C_PRICE = 3, C_BOUGHT = 5, C_HISTORY = 6, ROW = 13 };

static PyObject *rows_of(PyObject *candidates, PyObject *purchases, Py_ssize_t orders, PyObject *orders_index,
                         Py_buffer *product_orders, PyObject *anchor_obj, double now, double age_span,
                         PyObject *sales_index, Py_buffer *sales, double sales_scale);

/* A buffer of doubles, or a TypeError naming it. */
static int doubles(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (!view->format || strcmp(view->format, "d") != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be a buffer of doubles", what);
        return -1;
    }
    return 0;
}

/* The double at key's position in values (0 for a key without one). */
static int value_at(PyObject *index, Py_buffer *values, PyObject *key, double *out, const char *what) {
    *out = 0.0;
    PyObject *at = PyDict_GetItemWithError(index, key);
    if (!at) return PyErr_Occurred() ? -1 : 0;
    Py_ssize_t k = PyLong_AsSsize_t(at);
    if (k == -1 && PyErr_Occurred()) return -1;
    if (k < 0 || k >= values->len / (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_IndexError, "a %s position outside its values", what);
        return -1;
    }
    *out = ((const double *)values->buf)[k];
    return 0;
}

static PyObject *ranking_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *candidates, *purchases, *orders_index, *orders_values, *anchor_obj, *sales_index = Py_None,
             *sales = Py_None;
    Py_ssize_t orders;
    double now, age_span, sales_scale = 1.0;
    if (!PyArg_ParseTuple(args, "O!O!nO!OOdd|OOd:ranking_rows", &PyList_Type, &candidates, &PyDict_Type,
                          &purchases, &orders, &PyDict_Type, &orders_index, &orders_values, &anchor_obj, &now,
                          &age_span, &sales_index, &sales, &sales_scale))
        return NULL;
    Py_buffer counts = {0}, view = {0};
    int with_sales = sales_index != Py_None;
    if (with_sales && !PyDict_Check(sales_index)) {
        PyErr_SetString(PyExc_TypeError, "sales_index must be a dict");
        return NULL;
    }
    if (doubles(orders_values, &counts, "orders_values") < 0) return NULL;
    if (with_sales && doubles(sales, &view, "sales_values") < 0) {
        PyBuffer_Release(&counts);
        return NULL;
    }
    PyObject *out = rows_of(candidates, purchases, orders, orders_index, &counts, anchor_obj, now, age_span,
                            with_sales ? sales_index : NULL, with_sales ? &view : NULL, sales_scale);
    PyBuffer_Release(&counts);
    if (with_sales) PyBuffer_Release(&view);
    return out;
}

static PyObject *rows_of(PyObject *candidates, PyObject *purchases, Py_ssize_t orders, PyObject *orders_index,
                         Py_buffer *product_orders, PyObject *anchor_obj, double now, double age_span,
                         PyObject *sales_index, Py_buffer *sales, double sales_scale) {
    int has_anchor = anchor_obj != Py_None;
    double anchor_ts = 0.0;
    if (has_anchor && as_double(anchor_obj, &anchor_ts) < 0) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(candidates);
    PyObject *buf = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(n * ROW * sizeof(double)));
    if (!buf) return NULL;
    double *x = (double *)PyByteArray_AS_STRING(buf);
    double most = (double)(orders > 1 ? orders : 1);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PyList_GET_ITEM(candidates, i);
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) < 7) {
            PyErr_SetString(PyExc_TypeError, "a candidate is a Candidate tuple");
            goto fail;
        }
        double *row = x + i * ROW, bought, history, price = 0.0, sold = 0.0;
        PyObject *pid = PyTuple_GET_ITEM(c, C_PID), *price_obj = PyTuple_GET_ITEM(c, C_PRICE);
        if (as_double(PyTuple_GET_ITEM(c, C_BOUGHT), &bought) < 0) goto fail;
        if (as_double(PyTuple_GET_ITEM(c, C_HISTORY), &history) < 0) goto fail;
        int truth = PyObject_IsTrue(price_obj);          /* c.price or 0.0 */
        if (truth < 0) goto fail;
        if (truth && as_double(price_obj, &price) < 0) goto fail;
        if (value_at(orders_index, product_orders, pid, &sold, "product's orders") < 0) goto fail;  /* .orders */
        row[0] = (double)(n - i) / (double)n;
        row[1] = bought;
        row[2] = history;
        double logs[4];
        if (log1p_of(10 * bought, &logs[0]) < 0 || log1p_of(sold, &logs[1]) < 0 ||
                log1p_of(price, &logs[2]) < 0)
            goto fail;
        row[3] = logs[0];
        row[4] = logs[1] / 10;
        row[5] = row[6] = row[7] = row[8] = 0.0;
        PyObject *past = PyDict_GetItemWithError(purchases, pid);
        if (!past && PyErr_Occurred()) goto fail;
        if (past) {
            double times, ts;
            PyObject *t0 = PySequence_GetItem(past, 0), *t1 = t0 ? PySequence_GetItem(past, 1) : NULL;
            int rc = (!t1 || as_double(t0, &times) < 0 || as_double(t1, &ts) < 0) ? -1 : 0;
            Py_XDECREF(t0);
            Py_XDECREF(t1);
            if (rc < 0) goto fail;
            double share = times / most, age = now - ts;
            row[5] = share < 1.0 ? share : 1.0;                     /* min(1.0, ...) */
            if (log1p_of(times, &logs[3]) < 0) goto fail;
            row[6] = logs[3] / 3;
            age = (age > 0.0 ? age : 0.0) / age_span;              /* max(0.0, ...) / span */
            row[7] = age < 1.0 ? age : 1.0;
            row[8] = has_anchor && ts == anchor_ts ? 1.0 : 0.0;
        }
        row[9] = history > 0 ? 1.0 : 0.0;
        row[10] = bought > 0 ? 1.0 : 0.0;
        row[11] = 0.0;
        if (sales_index) {               /* Counts.values_of: the count at the product's position */
            double sold_recently;
            if (value_at(sales_index, sales, pid, &sold_recently, "recent-sales") < 0) goto fail;
            row[11] = sold_recently / sales_scale;
        }
        row[12] = logs[2] / 5;
    }
    return buf;
fail:
    Py_DECREF(buf);
    return NULL;
}

PyDoc_STRVAR(cross_sell_rows_doc,
"cross_sell_rows(anchors, items, pairs, orders, exponent, min_both, min_lift, limit, total_weight,\n"
"                scale, products, families, labels, why, cls)\n"
"--\n\n"
"candidates.cross_sells over complements_rows' candidates in one call: each complement whose\n"
"product (products: the catalog's product id -> Product) is not of one of the anchors' families\n"
"becomes a cls (Candidate) of (product id, score, (why, its anchor's label from labels,\n"
"attachment rate, lift), the product's price or None, 'bought_together', score, 0.0).");

static PyObject *cross_sell_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *anchors, *items, *pairs, *products, *families, *labels, *why;
    PyTypeObject *cls;
    Scan s;
    Py_ssize_t limit;
    double total_weight, scale;
    if (!PyArg_ParseTuple(args, "OO!O!ddddnddO!O!O!OO!:cross_sell_rows", &anchors, &PyDict_Type, &items,
                          &PyDict_Type, &pairs, &s.orders, &s.exponent, &s.min_both, &s.min_lift, &limit,
                          &total_weight, &scale, &PyDict_Type, &products, &PySet_Type, &families,
                          &PyDict_Type, &labels, &why, &PyType_Type, &cls))
        return NULL;
    if (check_rows(cls, total_weight, scale) < 0) return NULL;
    static PyObject *source = NULL, *zero = NULL, *family_name = NULL, *price_name = NULL;
    if (!source && !(source = PyUnicode_InternFromString("bought_together"))) return NULL;
    if (!zero && !(zero = PyFloat_FromDouble(0.0))) return NULL;
    if (!family_name && !(family_name = PyUnicode_InternFromString("family"))) return NULL;
    if (!price_name && !(price_name = PyUnicode_InternFromString("price"))) return NULL;
    Acc acc;
    PyObject *out = NULL;
    Py_ssize_t n = ranked_scan(&acc, &s, items, anchors, pairs, limit);
    if (n < 0) goto done;
    out = PyList_New(0);
    if (!out) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        Entry *e = &acc.entries[i];
        PyObject *product = PyDict_GetItemWithError(products, e->pid);      /* borrowed */
        if (!product && PyErr_Occurred()) goto fail;
        PyObject *price = Py_None;
        if (product && product != Py_None) {
            PyObject *family = PyObject_GetAttr(product, family_name);
            if (!family) goto fail;
            int skip = 0;
            if (family != Py_None) {
                skip = PySet_Contains(families, family);   /* another tier: an upsell, not a complement */
            }
            Py_DECREF(family);
            if (skip < 0) goto fail;
            if (skip) continue;
            price = PyObject_GetAttr(product, price_name);
            if (!price) goto fail;
        } else {
            Py_INCREF(price);
        }
        PyObject *label = PyDict_GetItemWithError(labels, e->anchor);       /* borrowed */
        if (!label) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, e->anchor);
            Py_DECREF(price);
            goto fail;
        }
        double na = e->anchor_na, nb = e->nb;      /* items[anchor] and items[pid], read by the scan */
        PyObject *score = PyFloat_FromDouble(e->score / total_weight);
        PyObject *reason = Py_BuildValue("(OOdd)", why, label, e->both / na, e->both * s.orders / (na * nb));
        PyObject *t = score && reason ? cls->tp_alloc(cls, 7) : NULL;
        if (!t) {
            Py_XDECREF(score);
            Py_XDECREF(reason);
            Py_DECREF(price);
            goto fail;
        }
        Py_INCREF(e->pid);
        Py_INCREF(score);            /* twice: the score and the "bought together" score */
        Py_INCREF(source);
        Py_INCREF(zero);
        PyTuple_SET_ITEM(t, 0, e->pid);
        PyTuple_SET_ITEM(t, 1, score);
        PyTuple_SET_ITEM(t, 2, reason);
        PyTuple_SET_ITEM(t, 3, price);
        PyTuple_SET_ITEM(t, 4, source);
        PyTuple_SET_ITEM(t, 5, score);
        PyTuple_SET_ITEM(t, 6, zero);
        int rc = PyList_Append(out, t);
        Py_DECREF(t);
        if (rc < 0) goto fail;
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    acc_free(&acc);
    return out;
}

PyDoc_STRVAR(candidate_values_doc,
"candidate_values(candidates, products, median_of, known, worth, accepted, scorer, terms, anchor_price)\n"
"--\n\n"
"The value of each candidate (Candidate tuples) as OfferPolicy._value_function's value gives it,\n"
"in a list, each also stored in known (product id -> value; a product already there keeps its\n"
"value). worth: (learned, expected, margin_weight, relevance_weight, weight, tilt, gap or None,\n"
"boost). With learned, P(accept) as DecisionScorer gives it: accepted (product id -> P, read and\n"
"filled), scorer (its source_weight, category_terms and brand_term fill its memos) and terms\n"
"(DecisionScorer.terms()). products: the catalog's product id -> Product; median_of(category):\n"
"the category's median price or None. Returns None where a candidate is outside what this\n"
"kernel reproduces to the last bit (a negative or non-finite base of a power, a non-positive\n"
"price ratio): the caller then values them in Python.");

typedef struct {
    double head, relevance, log_price_ratio, position, intercept, level, sensitivity;
    double price_gap, price_gap_abs, price_gap_x_sensitivity;
    PyObject *shopper;          /* tuple of floats */
    int profile, has_level;
    PyObject *sources, *categories, *brands, *scorer;
} Terms;

typedef struct {
    int learned, expected, has_gap;
    double margin_weight, relevance_weight, weight, tilt, gap, boost;
} Worth;

/* A memo's value for key, or what scorer.method(key) gives (which fills the memo). New reference. */
static PyObject *memo(PyObject *dict, PyObject *scorer, const char *method, PyObject *key) {
    PyObject *v = PyDict_GetItemWithError(dict, key);
    if (v) {
        Py_INCREF(v);
        return v;
    }
    if (PyErr_Occurred()) return NULL;
    return PyObject_CallMethod(scorer, method, "O", key);
}

static int read_terms(PyObject *t, Terms *terms) {
    PyObject *level;
    if (!PyArg_ParseTuple(t, "dddddO!pOddddO!O!O!:terms", &terms->head, &terms->relevance,
                          &terms->log_price_ratio, &terms->position, &terms->intercept, &PyTuple_Type,
                          &terms->shopper, &terms->profile, &level, &terms->sensitivity, &terms->price_gap,
                          &terms->price_gap_abs, &terms->price_gap_x_sensitivity, &PyDict_Type,
                          &terms->sources, &PyDict_Type, &terms->categories, &PyDict_Type, &terms->brands))
        return -1;
    terms->has_level = level != Py_None;
    terms->level = 0.0;
    if (terms->has_level && as_double(level, &terms->level) < 0) return -1;
    return 0;
}

/* An attribute that is a number or None: 1 with its value, 0 for None, -1 with an exception. */
static int optional_double(PyObject *obj, PyObject *name, double *out) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (!v) return -1;
    int rc = 0;
    if (v != Py_None) rc = as_double(v, out) < 0 ? -1 : 1;
    Py_DECREF(v);
    return rc;
}

/* price_position(product, catalog): 1 with the position, 0 for None, -1 with an exception. */
static int position_of(PyObject *category, double price, PyObject *median_of, PyObject *medians,
                       double *out) {
    if (category == Py_None || price <= 0) return 0;          /* a NaN price goes on, as in Python */
    PyObject *median = PyDict_GetItemWithError(medians, category);
    if (!median) {
        if (PyErr_Occurred()) return -1;
        median = PyObject_CallOneArg(median_of, category);
        if (!median) return -1;
        int rc = PyDict_SetItem(medians, category, median);
        Py_DECREF(median);                                    /* medians holds it */
        if (rc < 0) return -1;
    }
    if (median == Py_None) return 0;
    double m;
    if (as_double(median, &m) < 0) return -1;
    if (m == 0.0) return 0;                                   /* "if median": 0 is no median */
    double ratio = price / m;
    if (ratio <= 0) return 2;                                 /* math.log raises: Python's way */
    *out = log(ratio);
    return 1;
}

/* DecisionScorer.__call__'s x, term by term in the feature dict's order. 0, 2 when outside what the
 * kernel reproduces, -1 with an exception. */
static int acceptance_x(const Terms *t, PyObject *source, double score, int has_price, double price,
                        int has_anchor_price, double anchor_price, PyObject *category, PyObject *brand,
                        int has_product, int has_position, double position, double *out) {
    int has_ratio = has_price && price != 0.0 && has_anchor_price && anchor_price != 0.0;
    double ratio = 0.0, rounded;
    if (has_ratio && round_double(price / anchor_price, 4, &ratio) < 0) return -1;
    if (has_ratio && ratio < 0) return 2;                     /* math.log raises */
    PyObject *w = memo(t->sources, t->scorer, "source_weight", source);
    if (!w) return -1;
    double weight;
    int rc = as_double(w, &weight);
    Py_DECREF(w);
    if (rc < 0) return -1;
    double x = t->head + weight * 1.0;
    if (round_double(score, 6, &rounded) < 0) return -1;
    x += t->relevance * (2.0 < rounded ? 2.0 : rounded);     /* min(rounded, 2.0) */
    x += t->log_price_ratio * (has_ratio && ratio != 0.0 ? log(ratio) : 0.0);
    x += t->position * 0.0;
    if (t->profile) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t->shopper); i++) {
            double term;
            if (as_double(PyTuple_GET_ITEM(t->shopper, i), &term) < 0) return -1;
            x += term;
        }
        if (has_product) {
            PyObject *cat = memo(t->categories, t->scorer, "category_terms", category);
            if (!cat) return -1;
            double a, b, c;
            rc = (!PyTuple_Check(cat) || PyTuple_GET_SIZE(cat) != 2 || as_double(PyTuple_GET_ITEM(cat, 0), &a) < 0
                  || as_double(PyTuple_GET_ITEM(cat, 1), &b) < 0) ? -1 : 0;
            Py_DECREF(cat);
            if (rc < 0) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "category_terms gives two floats");
                return -1;
            }
            PyObject *br = memo(t->brands, t->scorer, "brand_term", brand);
            if (!br) return -1;
            rc = as_double(br, &c);
            Py_DECREF(br);
            if (rc < 0) return -1;
            x += a;
            x += b;
            x += c;
        }
        if (has_position && t->has_level) {
            double gap = position - t->level;
            x += t->price_gap * gap;
            x += t->price_gap_abs * fabs(gap);
            x += t->price_gap_x_sensitivity * (gap * t->sensitivity);
        }
    }
    x += t->intercept;
    *out = x;
    return 0;
}

/* Python's v ** w for the values the kernel takes: 0 with the power, 2 otherwise. */
static int power(double v, double w, double *out) {
    if (!isfinite(v) || !isfinite(w) || v < 0.0 || (v == 0.0 && w < 0.0)) return 2;
    *out = w == 0.0 ? 1.0 : pow(v, w);
    return isinf(*out) ? 2 : 0;                               /* Python raises OverflowError */
}

static PyObject *candidate_values(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *candidates, *products, *median_of, *known, *worth_t, *accepted, *scorer, *terms_t, *anchor_obj;
    if (!PyArg_ParseTuple(args, "O!O!OO!O!OOOO:candidate_values", &PyList_Type, &candidates, &PyDict_Type,
                          &products, &median_of, &PyDict_Type, &known, &PyTuple_Type, &worth_t, &accepted,
                          &scorer, &terms_t, &anchor_obj))
        return NULL;
    Worth wv;
    PyObject *gap_obj;
    if (!PyArg_ParseTuple(worth_t, "ppddddOd:worth", &wv.learned, &wv.expected, &wv.margin_weight,
                          &wv.relevance_weight, &wv.weight, &wv.tilt, &gap_obj, &wv.boost))
        return NULL;
    wv.has_gap = gap_obj != Py_None;
    wv.gap = 0.0;
    if (wv.has_gap && as_double(gap_obj, &wv.gap) < 0) return NULL;
    Terms t = {0};
    double anchor_price = 0.0;
    int has_anchor_price = anchor_obj != Py_None;
    if (has_anchor_price && as_double(anchor_obj, &anchor_price) < 0) return NULL;
    if (wv.learned) {
        if (!PyDict_Check(accepted)) {
            PyErr_SetString(PyExc_TypeError, "accepted must be a dict when learned");
            return NULL;
        }
        if (read_terms(terms_t, &t) < 0) return NULL;
        t.scorer = scorer;
    }
    static PyObject *margin_name = NULL, *category_name = NULL, *brand_name = NULL, *price_name = NULL;
    if (!margin_name && !(margin_name = PyUnicode_InternFromString("margin"))) return NULL;
    if (!category_name && !(category_name = PyUnicode_InternFromString("category"))) return NULL;
    if (!brand_name && !(brand_name = PyUnicode_InternFromString("brand"))) return NULL;
    if (!price_name && !(price_name = PyUnicode_InternFromString("price"))) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(candidates);
    PyObject *out = PyList_New(n), *medians = PyDict_New(), *category = NULL, *brand = NULL;
    if (!out || !medians) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PyList_GET_ITEM(candidates, i);
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) < 7) {
            PyErr_SetString(PyExc_TypeError, "a candidate is a Candidate tuple");
            goto fail;
        }
        PyObject *pid = PyTuple_GET_ITEM(c, C_PID);
        PyObject *value = PyDict_GetItemWithError(known, pid);
        if (value) {                                          /* valued before: kept */
            Py_INCREF(value);
            PyList_SET_ITEM(out, i, value);
            continue;
        }
        if (PyErr_Occurred()) goto fail;
        double score, price = 0.0, margin = 0.0, product_price = 0.0, position = 0.0, p = 0.0, v;
        PyObject *price_obj = PyTuple_GET_ITEM(c, C_PRICE);
        if (as_double(PyTuple_GET_ITEM(c, 1), &score) < 0) goto fail;
        int has_price = price_obj != Py_None;
        if (has_price && as_double(price_obj, &price) < 0) goto fail;
        PyObject *product = PyDict_GetItemWithError(products, pid);     /* borrowed */
        if (!product && PyErr_Occurred()) goto fail;
        int has_product = product != NULL && product != Py_None, has_margin = 0, has_position = 0;
        Py_CLEAR(category);
        Py_CLEAR(brand);
        if (has_product) {
            if ((has_margin = optional_double(product, margin_name, &margin)) < 0) goto fail;
            if (optional_double(product, price_name, &product_price) < 0) goto fail;
            if (!(category = PyObject_GetAttr(product, category_name))) goto fail;
            if (!(brand = PyObject_GetAttr(product, brand_name))) goto fail;
            if (wv.learned || wv.tilt != 0.0) {
                has_position = position_of(category, product_price, median_of, medians, &position);
                if (has_position < 0) goto fail;
                if (has_position == 2) goto python;
            }
        }
        PyObject *p_obj = NULL;
        if (wv.learned) {
            p_obj = PyDict_GetItemWithError(accepted, pid);
            if (p_obj) {
                if (as_double(p_obj, &p) < 0) goto fail;
            } else {
                if (PyErr_Occurred()) goto fail;
                double x;
                int rc = acceptance_x(&t, PyTuple_GET_ITEM(c, 4), score, has_price, price, has_anchor_price,
                                      anchor_price, category, brand, has_product, has_position, position, &x);
                if (rc < 0) goto fail;
                if (rc == 2) goto python;
                if (x < -30 || x > 30) {                      /* river's sigmoid: an int there */
                    p = x < -30 ? 0.0 : 1.0;
                    p_obj = PyLong_FromLong(x < -30 ? 0 : 1);
                } else {
                    p = 1 / (1 + exp(-x));
                    p_obj = PyFloat_FromDouble(p);
                }
                if (!p_obj) goto fail;
                rc = PyDict_SetItem(accepted, pid, p_obj);
                Py_DECREF(p_obj);
                if (rc < 0) goto fail;
            }
        }
        if (wv.expected) {
            double q = wv.learned ? p : (score < 1.0 ? score : 1.0);   /* min(1.0, c.score) */
            v = q * (has_price && price != 0.0 ? price : 1.0) * (has_margin ? margin : 1.0);
        } else {
            v = score * (1.0 + wv.margin_weight * (has_margin && margin != 0.0 ? margin : 0.0));
            if (wv.learned) {
                double a, b;
                if (power(v, wv.relevance_weight, &a) || power(p, wv.weight, &b)) goto python;
                v = a * b;
            }
            if (wv.tilt != 0.0 && has_position) {
                double clipped = position < 1.0 ? position : 1.0;      /* max(-1.0, min(1.0, position)) */
                clipped = clipped > -1.0 ? clipped : -1.0;
                v *= exp(wv.tilt * clipped);
            }
            if (wv.has_gap && has_price && price >= wv.gap) v *= wv.boost;
        }
        value = PyFloat_FromDouble(v);
        if (!value) goto fail;
        if (PyDict_SetItem(known, pid, value) < 0) {
            Py_DECREF(value);
            goto fail;
        }
        PyList_SET_ITEM(out, i, value);
    }
    Py_XDECREF(category);
    Py_XDECREF(brand);
    Py_DECREF(medians);
    return out;
python:
    Py_XDECREF(category);
    Py_XDECREF(brand);
    Py_DECREF(medians);
    Py_DECREF(out);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(category);
    Py_XDECREF(brand);
    Py_XDECREF(medians);
    Py_XDECREF(out);
    return NULL;
}

PyDoc_STRVAR(eligible_candidates_doc,
"eligible_candidates(candidates, wanted, anchor_id, cart, purchases, ordered, products, declined,\n"
"                    shown, now, windows, price_rule)\n"
"--\n\n"
"The loop of OfferPolicy._ranked without a trace: the candidates (Candidate tuples, best first)\n"
"that no rule excludes, in order, stopping once wanted are found (wanted -1: all). The hygiene\n"
"rules of OfferPolicy._exclusions read cart, purchases (product -> [times, last time]), ordered,\n"
"products (id -> Product), declined (product -> time) and shown (product -> (times, since)) at\n"
"now; windows: (repurchase, min_stock, cooldown, fatigue, max_impressions). price_rule, checked\n"
"first for a candidate with a price: None; ('cap', most) for a price at most most; or\n"
"('share', anchor_price, bounds, bound_of) for a price at most the candidate category's bound\n"
"times anchor_price, bounds the bound by category (bound_of(product id) fills a missing one).");

/* OfferPolicy._exclusions' verdict: 1 when a rule excludes pid, 0 when none does, -1 on error. */
typedef struct {
    PyObject *anchor, *cart, *purchases, *ordered, *products, *declined, *shown;
    double now, repurchase, cooldown, fatigue, max_impressions;
    long long min_stock;
} Hygiene;

static int excluded(const Hygiene *h, PyObject *pid) {
    static PyObject *active_name = NULL, *stock_name = NULL;
    if (!active_name && !(active_name = PyUnicode_InternFromString("active"))) return -1;
    if (!stock_name && !(stock_name = PyUnicode_InternFromString("stock"))) return -1;
    int eq = PyObject_RichCompareBool(pid, h->anchor, Py_EQ);
    if (eq) return eq;                                                   /* anchor */
    int in = PyDict_Contains(h->cart, pid);
    if (in) return in;                                                   /* in_cart */
    PyObject *past = PyDict_GetItemWithError(h->purchases, pid);
    if (!past && PyErr_Occurred()) return -1;
    if (past) {
        int truth = PyObject_IsTrue(past);
        if (truth < 0) return -1;
        if (truth) {
            PyObject *ts_obj = PySequence_GetItem(past, 1);
            double ts;
            int rc = ts_obj ? as_double(ts_obj, &ts) : -1;
            Py_XDECREF(ts_obj);
            if (rc < 0) return -1;
            if (h->now - ts < h->repurchase) return 1;                   /* just_bought */
        }
    }
    in = PySequence_Contains(h->ordered, pid);
    if (in) return in;                                                   /* just_bought */
    PyObject *product = PyDict_GetItemWithError(h->products, pid);
    if (!product && PyErr_Occurred()) return -1;
    if (product && product != Py_None) {                                 /* unavailable */
        PyObject *active = PyObject_GetAttr(product, active_name);
        if (!active) return -1;
        int truth = PyObject_IsTrue(active);
        Py_DECREF(active);
        if (truth <= 0) return truth < 0 ? -1 : 1;
        PyObject *stock = PyObject_GetAttr(product, stock_name);
        if (!stock) return -1;
        int low = stock == Py_None ? 0 : -2;
        if (low == -2) {
            PyObject *most = PyLong_FromLongLong(h->min_stock);
            low = most ? PyObject_RichCompareBool(stock, most, Py_LT) : -1;
            Py_XDECREF(most);
        }
        Py_DECREF(stock);
        if (low) return low;
    }
    PyObject *declined_at = PyDict_GetItemWithError(h->declined, pid);
    if (!declined_at && PyErr_Occurred()) return -1;
    if (declined_at && declined_at != Py_None) {                         /* declined */
        double at;
        if (as_double(declined_at, &at) < 0) return -1;
        if (h->now - at < h->cooldown) return 1;
    }
    PyObject *seen = PyDict_GetItemWithError(h->shown, pid);            /* frequency_cap */
    if (!seen && PyErr_Occurred()) return -1;
    if (seen) {
        PyObject *times_obj = PySequence_GetItem(seen, 0);
        PyObject *since_obj = times_obj ? PySequence_GetItem(seen, 1) : NULL;
        double since = 0.0, times = 0.0;
        int rc = (!since_obj || as_double(since_obj, &since) < 0 || as_double(times_obj, &times) < 0) ? -1 : 0;
        Py_XDECREF(times_obj);
        Py_XDECREF(since_obj);
        if (rc < 0) return -1;
        if ((h->now - since > h->fatigue ? 0.0 : times) >= h->max_impressions) return 1;
    } else if (0.0 >= h->max_impressions) {                             /* shown.get(pid, (0, now)) */
        return 1;
    }
    return 0;
}

/* The price rule: 1 when the candidate's price passes (or it has none), 0 when not, -1 on error. */
static int price_ok(PyObject *rule, PyObject *c, PyObject *products) {
    static PyObject *category_name = NULL;
    if (!category_name && !(category_name = PyUnicode_InternFromString("category"))) return -1;
    PyObject *price_obj = PyTuple_GET_ITEM(c, C_PRICE);
    if (rule == Py_None || price_obj == Py_None) return 1;
    double price, most;
    if (as_double(price_obj, &price) < 0) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(rule);
    if (n == 2) {                                                        /* ('cap', most) */
        if (as_double(PyTuple_GET_ITEM(rule, 1), &most) < 0) return -1;
        return price <= most;
    }
    double anchor_price, bound;
    PyObject *bounds = PyTuple_GET_ITEM(rule, 2), *bound_of = PyTuple_GET_ITEM(rule, 3);
    if (as_double(PyTuple_GET_ITEM(rule, 1), &anchor_price) < 0) return -1;
    PyObject *pid = PyTuple_GET_ITEM(c, C_PID);
    PyObject *product = PyDict_GetItemWithError(products, pid);
    if (!product && PyErr_Occurred()) return -1;
    PyObject *category = Py_None;
    Py_INCREF(category);
    if (product && product != Py_None) {
        Py_DECREF(category);
        if (!(category = PyObject_GetAttr(product, category_name))) return -1;
    }
    PyObject *b = PyDict_GetItemWithError(bounds, category);            /* borrowed */
    if (!b || b == Py_None) {
        if (PyErr_Occurred()) { Py_DECREF(category); return -1; }
        PyObject *fresh = PyObject_CallOneArg(bound_of, pid);
        int rc = fresh ? PyDict_SetItem(bounds, category, fresh) : -1;
        Py_XDECREF(fresh);
        if (rc < 0) { Py_DECREF(category); return -1; }
        b = PyDict_GetItemWithError(bounds, category);
    }
    Py_DECREF(category);
    if (!b || as_double(b, &bound) < 0) return -1;
    return price <= bound * anchor_price;
}

static PyObject *eligible_candidates(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *candidates, *windows, *rule;
    Py_ssize_t wanted;
    Hygiene h;
    if (!PyArg_ParseTuple(args, "O!nOO!O!OO!O!O!dO!O:eligible_candidates", &PyList_Type, &candidates, &wanted,
                          &h.anchor, &PyDict_Type, &h.cart, &PyDict_Type, &h.purchases, &h.ordered,
                          &PyDict_Type, &h.products, &PyDict_Type, &h.declined, &PyDict_Type, &h.shown, &h.now,
                          &PyTuple_Type, &windows, &rule))
        return NULL;
    if (!PyArg_ParseTuple(windows, "dLddd:windows", &h.repurchase, &h.min_stock, &h.cooldown, &h.fatigue,
                          &h.max_impressions))
        return NULL;
    if (rule != Py_None && (!PyTuple_Check(rule) || (PyTuple_GET_SIZE(rule) != 2 && PyTuple_GET_SIZE(rule) != 4)
                            || (PyTuple_GET_SIZE(rule) == 4 && !PyDict_Check(PyTuple_GET_ITEM(rule, 2))))) {
        PyErr_SetString(PyExc_TypeError, "price_rule: None, ('cap', most) or ('share', anchor_price, bounds, bound_of)");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(candidates); i++) {
        PyObject *c = PyList_GET_ITEM(candidates, i);
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) < 7) {
            PyErr_SetString(PyExc_TypeError, "a candidate is a Candidate tuple");
            goto fail;
        }
        int ok = price_ok(rule, c, h.products);
        if (ok < 0) goto fail;
        if (ok) {
            int out_ = excluded(&h, PyTuple_GET_ITEM(c, C_PID));
            if (out_ < 0) goto fail;
            if (!out_ && PyList_Append(out, c) < 0) goto fail;
        }
        if (wanted >= 0 && PyList_GET_SIZE(out) >= wanted) break;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

PyDoc_STRVAR(repeat_blend_doc,
"repeat_blend(complements, purchases, orders, anchor_id, index, order_counts, again_counts,\n"
"             prior_rate, prior_weight, products, half_life, weight, min_rate, habit, rest,\n"
"             bonus, why_before, why_with_anchor, source, cls)\n"
"--\n\n"
"candidates.blend(complements, candidates.repeat_buys(...), weight) in one call: the shopper's\n"
"past purchases (purchases: product -> [times, last time]; orders: the shopper's orders) scored\n"
"by their product's repeat rate (index: product -> position in order_counts and again_counts,\n"
"RepeatPurchases' arrays; prior_rate and prior_weight its prior) and blended into the\n"
"complements (Candidate tuples of cls), best first. habit and rest: PRODUCT_HABIT and\n"
"1 - PRODUCT_HABIT; bonus: WITH_ANCHOR_BONUS; why_before and why_with_anchor the reasons'\n"
"formats; source: 'history'; products: the catalog's product id -> Product (for prices).");

typedef struct {
    PyObject *cand;     /* owned */
    double score;
    Py_ssize_t order;
} Ranked;

/* A new Candidate of cls from its seven fields (stolen references; NULL if any is NULL). */
static PyObject *candidate_of(PyTypeObject *cls, PyObject *fields[7]) {
    PyObject *t = NULL;
    for (int i = 0; i < 7; i++)
        if (!fields[i]) goto fail;
    if (!(t = cls->tp_alloc(cls, 7))) goto fail;
    for (int i = 0; i < 7; i++) PyTuple_SET_ITEM(t, i, fields[i]);
    return t;
fail:
    for (int i = 0; i < 7; i++) Py_XDECREF(fields[i]);
    return NULL;
}

static PyObject *repeat_blend(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *complements, *purchases, *anchor, *index, *orders_obj, *again_obj, *products, *why_before,
             *why_with_anchor, *source;
    PyTypeObject *cls;
    Py_ssize_t shopper_orders;
    double prior_rate, prior_weight, half_life, weight, min_rate, habit_w, rest_w, bonus;
    if (!PyArg_ParseTuple(args, "O!O!nOO!OOddO!ddddddOOOO!:repeat_blend", &PyList_Type, &complements,
                          &PyDict_Type, &purchases, &shopper_orders, &anchor, &PyDict_Type, &index, &orders_obj,
                          &again_obj, &prior_rate, &prior_weight, &PyDict_Type, &products, &half_life, &weight,
                          &min_rate, &habit_w, &rest_w, &bonus, &why_before, &why_with_anchor, &source,
                          &PyType_Type, &cls))
        return NULL;
    if (!PyType_IsSubtype(cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a tuple type (Candidate)");
        return NULL;
    }
    static PyObject *price_name = NULL, *zero = NULL, *plural = NULL, *none = NULL;
    if (!price_name && !(price_name = PyUnicode_InternFromString("price"))) return NULL;
    if (!zero && !(zero = PyFloat_FromDouble(0.0))) return NULL;
    if (!plural && !(plural = PyUnicode_InternFromString("s"))) return NULL;
    if (!none && !(none = PyUnicode_InternFromString(""))) return NULL;
    Py_buffer counted = {0}, again = {0};
    if (doubles(orders_obj, &counted, "order_counts") < 0) return NULL;
    if (doubles(again_obj, &again, "again_counts") < 0) {
        PyBuffer_Release(&counted);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(complements), size = 0, cap = n + PyDict_GET_SIZE(purchases) + 1;
    Ranked *ranked = PyMem_Calloc((size_t)cap, sizeof(Ranked));
    Key *keys = NULL;
    PyObject *where = PyDict_New(), *out = NULL, *orders_long = PyLong_FromSsize_t(shopper_orders > 1 ? shopper_orders : 1);
    if (!ranked || !where || !orders_long) {
        if (!ranked) PyErr_NoMemory();
        goto done;
    }
    /* merged = {c.product_id: c for c in complements} */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PyList_GET_ITEM(complements, i);
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) < 7) {
            PyErr_SetString(PyExc_TypeError, "a candidate is a Candidate tuple");
            goto done;
        }
        PyObject *at = PyDict_GetItemWithError(where, PyTuple_GET_ITEM(c, C_PID));
        Py_ssize_t k = size;
        if (at) k = PyLong_AsSsize_t(at);
        else if (PyErr_Occurred()) goto done;
        else {
            PyObject *pos = PyLong_FromSsize_t(size);
            int rc = pos ? PyDict_SetItem(where, PyTuple_GET_ITEM(c, C_PID), pos) : -1;
            Py_XDECREF(pos);
            if (rc < 0) goto done;
            ranked[size].order = size;
            size++;
        }
        double score;
        if (as_double(PyTuple_GET_ITEM(c, 1), &score) < 0) goto done;
        Py_INCREF(c);
        Py_XSETREF(ranked[k].cand, c);
        ranked[k].score = score;
    }
    /* repeat_buys: latest, the anchor's time, each past purchase's score */
    double latest = 0.0, anchor_ts = 0.0, orders = (double)(shopper_orders > 1 ? shopper_orders : 1);
    int first = 1, has_anchor_ts = 0;
    Py_ssize_t pos = 0;
    PyObject *pid, *past;
    while (PyDict_Next(purchases, &pos, &pid, &past)) {
        PyObject *ts_obj = PySequence_GetItem(past, 1);
        double ts;
        int rc = ts_obj ? as_double(ts_obj, &ts) : -1;
        Py_XDECREF(ts_obj);
        if (rc < 0) goto done;
        if (first || ts > latest) latest = ts;
        first = 0;
    }
    PyObject *anchor_past = PyDict_GetItemWithError(purchases, anchor);
    if (!anchor_past && PyErr_Occurred()) goto done;
    if (anchor_past) {
        PyObject *ts_obj = PySequence_GetItem(anchor_past, 1);
        int rc = ts_obj ? as_double(ts_obj, &anchor_ts) : -1;
        Py_XDECREF(ts_obj);
        if (rc < 0) goto done;
        has_anchor_ts = 1;
    }
    const double *counts = counted.buf, *agains = again.buf;
    Py_ssize_t counts_len = counted.len / (Py_ssize_t)sizeof(double), again_len = again.len / (Py_ssize_t)sizeof(double);
    pos = 0;
    while (PyDict_Next(purchases, &pos, &pid, &past)) {
        PyObject *times_obj = PySequence_GetItem(past, 0), *ts_obj = times_obj ? PySequence_GetItem(past, 1) : NULL;
        double times = 0.0, ts = 0.0, product_orders = 0.0, product_again = 0.0;
        int rc = (!ts_obj || as_double(times_obj, &times) < 0 || as_double(ts_obj, &ts) < 0) ? -1 : 0;
        Py_XDECREF(ts_obj);
        if (rc < 0) { Py_XDECREF(times_obj); goto done; }
        PyObject *at = PyDict_GetItemWithError(index, pid);                    /* RepeatPurchases.rate */
        if (!at && PyErr_Occurred()) { Py_DECREF(times_obj); goto done; }
        if (at) {
            Py_ssize_t i = PyLong_AsSsize_t(at);
            if (i == -1 && PyErr_Occurred()) { Py_DECREF(times_obj); goto done; }
            if (i >= 0 && i < counts_len && i < again_len) {
                product_orders = counts[i];
                product_again = agains[i];
            }
        }
        double rate = (product_again + prior_rate * prior_weight) / (product_orders + prior_weight);
        if (rate < min_rate) { Py_DECREF(times_obj); continue; }
        double share = times / orders;
        double habit = habit_w * rate + rest_w * (share < 1.0 ? share : 1.0);
        double score = habit * (1 - pow(0.5, times)) * pow(0.5, (latest - ts) / half_life);
        PyObject *why;
        if (has_anchor_ts && ts == anchor_ts) {
            score += bonus;
            why = Py_BuildValue("(OOO)", why_with_anchor, times_obj, times > 1 ? plural : none);
        } else {
            PyObject *fewer = orders < times ? orders_long : times_obj;          /* min(times, orders) */
            why = Py_BuildValue("(OOOOd)", why_before, fewer, orders_long, orders > 1 ? plural : none, rate);
        }
        Py_DECREF(times_obj);
        if (!why) goto done;
        double part = weight * score;                                         /* blend */
        if (part <= 0) { Py_DECREF(why); continue; }
        PyObject *price = Py_None;
        PyObject *product = PyDict_GetItemWithError(products, pid);
        if (!product && PyErr_Occurred()) { Py_DECREF(why); goto done; }
        if (product && product != Py_None) {
            if (!(price = PyObject_GetAttr(product, price_name))) { Py_DECREF(why); goto done; }
        } else {
            Py_INCREF(price);
        }
        PyObject *at_merged = PyDict_GetItemWithError(where, pid);
        if (!at_merged && PyErr_Occurred()) { Py_DECREF(why); Py_DECREF(price); goto done; }
        PyObject *cand;
        Py_ssize_t k;
        if (!at_merged) {
            Py_INCREF(pid); Py_INCREF(source); Py_INCREF(zero);
            cand = candidate_of(cls, (PyObject *[7]){pid, PyFloat_FromDouble(part), why, price, source, zero,
                                                     PyFloat_FromDouble(score)});
            if (!cand) goto done;
            PyObject *at_new = PyLong_FromSsize_t(size);
            rc = at_new ? PyDict_SetItem(where, pid, at_new) : -1;
            Py_XDECREF(at_new);
            if (rc < 0) { Py_DECREF(cand); goto done; }
            k = size++;
            ranked[k].order = k;
            ranked[k].score = part;
        } else {
            k = PyLong_AsSsize_t(at_merged);
            PyObject *c = ranked[k].cand;
            double total = ranked[k].score + part;
            int personal_wins = part > ranked[k].score;
            PyObject *kept_why = personal_wins ? why : PyTuple_GET_ITEM(c, 2);
            PyObject *kept_source = personal_wins ? source : PyTuple_GET_ITEM(c, 4);
            Py_INCREF(PyTuple_GET_ITEM(c, C_PID)); Py_INCREF(kept_why); Py_INCREF(PyTuple_GET_ITEM(c, C_PRICE));
            Py_INCREF(kept_source); Py_INCREF(PyTuple_GET_ITEM(c, C_BOUGHT));
            Py_DECREF(why);
            Py_DECREF(price);
            cand = candidate_of(cls, (PyObject *[7]){PyTuple_GET_ITEM(c, C_PID), PyFloat_FromDouble(total), kept_why,
                                                     PyTuple_GET_ITEM(c, C_PRICE), kept_source,
                                                     PyTuple_GET_ITEM(c, C_BOUGHT), PyFloat_FromDouble(score)});
            if (!cand) goto done;
            ranked[k].score = total;
        }
        Py_XSETREF(ranked[k].cand, cand);
    }
    /* sorted(..., reverse=True), stable: by score, ties in the merged dict's order */
    if (!(keys = PyMem_Malloc(sizeof(Key) * (size_t)(size ? size : 1)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < size; i++) keys[i] = (Key){ranked[i].score, ranked[i].order, i};
    if (size > 0) key_sort(keys, 0, size - 1, size);
    if (!(out = PyList_New(size))) goto done;
    for (Py_ssize_t i = 0; i < size; i++) {
        PyList_SET_ITEM(out, i, ranked[keys[i].at].cand);
        ranked[keys[i].at].cand = NULL;
    }
done:
    if (ranked)
        for (Py_ssize_t i = 0; i < size; i++) Py_XDECREF(ranked[i].cand);
    PyMem_Free(ranked);
    PyMem_Free(keys);
    Py_XDECREF(where);
    Py_XDECREF(orders_long);
    PyBuffer_Release(&counted);
    PyBuffer_Release(&again);
    return out;
}

PyDoc_STRVAR(count_pairs_doc,
"count_pairs(pairs, anchors, paired, weight, most, own_row)\n"
"--\n\n"
"The pair counting of BoughtTogether._count_pairs: for each anchor, weight added to its row's\n"
"count of every other product of paired, in the anchor's PairRow (made when it has none).\n"
"own_row(anchor) turns any other row (adopted, or a dict) into a PairRow and returns it; once a\n"
"row holds more than most pairs it is cut to its most/2 largest counts (PairRow.cut).");

static PyObject *count_pairs(PyObject *self, PyObject *args) {
    PyObject *pairs, *anchors, *paired, *weight, *own_row;
    Py_ssize_t most;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!O!O!nO:count_pairs", &PyDict_Type, &pairs, &PyList_Type, &anchors,
                          &PyList_Type, &paired, &PyFloat_Type, &weight, &most, &own_row))
        return NULL;
    double w = PyFloat_AS_DOUBLE(weight);
    Py_ssize_t n = PyList_GET_SIZE(paired);
    PyObject *result = NULL, *a = NULL;
    /* the order's products numbered once: every row's lookups then compare numbers */
    uint32_t *ids = PyMem_Malloc(sizeof(uint32_t) * (size_t)(n ? n : 1));
    if (!ids) return PyErr_NoMemory();
    for (Py_ssize_t j = 0; j < n; j++) {
        Py_ssize_t id = id_of(PyList_GET_ITEM(paired, j));
        if (id < 0) goto done;
        ids[j] = (uint32_t)id;
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(anchors); k++) {
        Py_ssize_t a_id = id_of(PyList_GET_ITEM(anchors, k));
        if (a_id < 0) goto done;
        a = id_objs[a_id];                                     /* the interned id: the pairs key */
        Py_INCREF(a);
        PyObject *row = PyDict_GetItemWithError(pairs, a);    /* borrowed, held by pairs */
        if (!row) {
            if (PyErr_Occurred()) goto done;
            PyObject *fresh = PairRowType.tp_alloc(&PairRowType, 0);
            if (!fresh) goto done;
            int rc = PyDict_SetItem(pairs, a, fresh);
            Py_DECREF(fresh);
            if (rc < 0) goto done;
            row = fresh;
        } else if (!Py_IS_TYPE(row, &PairRowType)) {         /* adopted: counted here from now on */
            PyObject *own = PyObject_CallOneArg(own_row, a);
            if (!own) goto done;
            Py_DECREF(own);                                    /* pairs holds it */
            if (!Py_IS_TYPE(own, &PairRowType)) {
                PyErr_SetString(PyExc_TypeError, "own_row must return a PairRow");
                goto done;
            }
            row = own;
        }
        PairRowObject *r = (PairRowObject *)row;
        for (Py_ssize_t j = 0; j < n; j++)
            if (ids[j] != (uint32_t)a_id && row_add(r, ids[j], w, 1) < 0) goto done;
        if (r->size > most && row_cut(r, most / 2) < 0) goto done;
        Py_CLEAR(a);
    }
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(a);
    PyMem_Free(ids);
    return result;
}

/* ---- category_upsells and content_rows: the long lists of a long-tail catalog ---- */

/* A product's attribute as a double (its price), -1 with an exception on error. */
static int attr_double(PyObject *obj, PyObject *name, double *out) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (!v) return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* items.get(pid, 0.0) as a double. */
static int count_of(PyObject *items, PyObject *pid, double *out) {
    PyObject *v = PyDict_GetItemWithError(items, pid);          /* borrowed */
    if (!v) {
        if (PyErr_Occurred()) return -1;
        *out = 0.0;
        return 0;
    }
    *out = PyFloat_AsDouble(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* Whether a (a product's brand) == b, as Python's == takes it. */
static int same_brand(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    return PyObject_RichCompareBool(a, b, Py_EQ);
}

/* Appends a new Candidate of cls to list: its id, score, reason and price stolen (NULL if any
 * could not be made), its source and the zero of its bought and history scores borrowed. */
static int append_candidate(PyObject *list, PyTypeObject *cls, PyObject *pid, PyObject *score, PyObject *why,
                            PyObject *price, PyObject *source, PyObject *zero) {
    Py_INCREF(source);
    Py_INCREF(zero);
    Py_INCREF(zero);
    PyObject *cand = candidate_of(cls, (PyObject *[7]){pid, score, why, price, source, zero, zero});
    if (!cand) return -1;
    int rc = PyList_Append(list, cand);
    Py_DECREF(cand);
    return rc;
}

/* keys[0..n) with the best top first in ranked order: 0, or 1 if a score is NaN (Python's sort
 * orders those otherwise: the caller then leaves the ranking to Python). */
static int keys_ranked(Key *keys, Py_ssize_t n, Py_ssize_t top) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (isnan(keys[i].score)) return 1;
    if (n > 0) key_sort(keys, 0, n - 1, top);
    return 0;
}

PyDoc_STRVAR(category_upsells_doc,
"category_upsells(products, anchor_id, anchor_price, brand, items, scale, base, reach, why, cls)\n"
"--\n\n"
"The same-category upgrades of candidates.upsells, best first: for each Product of products\n"
"(the anchor category's price band) other than the anchor and pricier than anchor_price, a\n"
"Candidate of cls scored base + 0.5 * sold / (sold + 5) (sold: items.get(id, 0) / scale),\n"
"+0.1 for the anchor's brand (None: no brand), times the shopper's reach: reach is None\n"
"(every upgrade fits) or (the category's median price, the allowed log price step, the falloff\n"
"beyond it), the fit exp(-falloff * max(0, log(price / median) - allowed)). why:\n"
"the reason's format. None where a score is NaN (then Python ranks them).");

static PyObject *category_upsells(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *products, *anchor_id, *brand, *items, *reach, *why;
    PyTypeObject *cls;
    double anchor_price, scale, base, median = 0.0, allowed = 0.0, falloff = 0.0;
    if (!PyArg_ParseTuple(args, "O!OdOO!ddOOO!:category_upsells", &PyList_Type, &products, &anchor_id,
                          &anchor_price, &brand, &PyDict_Type, &items, &scale, &base, &reach, &why,
                          &PyType_Type, &cls))
        return NULL;
    if (!PyType_IsSubtype(cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a tuple type (Candidate)");
        return NULL;
    }
    int fits = reach != Py_None;
    if (fits && !PyArg_ParseTuple(reach, "ddd:reach", &median, &allowed, &falloff)) return NULL;
    if (scale == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return NULL;
    }
    static PyObject *id_name = NULL, *price_name = NULL, *brand_name = NULL, *name_name = NULL,
                    *source = NULL, *zero = NULL;
    if (!id_name && !(id_name = PyUnicode_InternFromString("product_id"))) return NULL;
    if (!price_name && !(price_name = PyUnicode_InternFromString("price"))) return NULL;
    if (!brand_name && !(brand_name = PyUnicode_InternFromString("brand"))) return NULL;
    if (!name_name && !(name_name = PyUnicode_InternFromString("name"))) return NULL;
    if (!source && !(source = PyUnicode_InternFromString("category"))) return NULL;
    if (!zero && !(zero = PyFloat_FromDouble(0.0))) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(products), size = 0;
    Key *keys = PyMem_Malloc(sizeof(Key) * (size_t)(n ? n : 1));
    PyObject *made = PyList_New(0), *out = NULL;
    if (!keys || !made) {
        if (!keys) PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyList_GET_ITEM(products, i);
        PyObject *pid = PyObject_GetAttr(p, id_name);
        if (!pid) goto done;
        double price;
        int skip = attr_double(p, price_name, &price);
        if (skip == 0) {
            skip = PyObject_RichCompareBool(pid, anchor_id, Py_EQ);
            if (skip == 0 && price <= anchor_price) skip = 1;
        }
        if (skip != 0) {
            Py_DECREF(pid);
            if (skip < 0) goto done;
            continue;
        }
        double sold;
        if (count_of(items, pid, &sold) < 0) { Py_DECREF(pid); goto done; }
        sold = sold / scale;
        double score = base + 0.5 * sold / (sold + 5.0);
        if (brand != Py_None) {
            PyObject *pb = PyObject_GetAttr(p, brand_name);
            int same = pb ? same_brand(pb, brand) : -1;
            Py_XDECREF(pb);
            if (same < 0) { Py_DECREF(pid); goto done; }
            if (same) score += 0.1;
        }
        double fit = 1.0;       /* price_position None (no price) or no median: it fits */
        if (fits && price > 0.0) {
            double ratio = price / median;
            if (!(ratio > 0.0)) {   /* math.log raises; let Python say so */
                Py_DECREF(pid);
                Py_CLEAR(made);
                Py_INCREF(Py_None);
                out = Py_None;
                goto done;
            }
            double over = log(ratio) - allowed;
            fit = exp(-falloff * (over > 0.0 ? over : 0.0));
        }
        PyObject *label = PyObject_GetAttr(p, name_name);          /* Product.label: its name or its id */
        if (label) {
            int named = PyObject_IsTrue(label);
            if (named <= 0) {
                Py_DECREF(label);
                label = NULL;
                if (named == 0) {
                    Py_INCREF(pid);
                    label = pid;
                }
            }
        }
        if (append_candidate(made, cls, pid, PyFloat_FromDouble(score * fit),
                             label ? Py_BuildValue("(ONd)", why, label, price / anchor_price - 1.0) : NULL,
                             PyFloat_FromDouble(price), source, zero) < 0)
            goto done;
        keys[size] = (Key){score * fit, size, size};
        size++;
    }
    if (keys_ranked(keys, size, size)) {
        Py_INCREF(Py_None);
        out = Py_None;
        goto done;
    }
    if (!(out = PyList_New(size))) goto done;
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *cand = PyList_GET_ITEM(made, keys[i].at);
        Py_INCREF(cand);
        PyList_SET_ITEM(out, i, cand);
    }
done:
    PyMem_Free(keys);
    Py_XDECREF(made);
    return out;
}

PyDoc_STRVAR(content_rows_doc,
"content_rows(groups, items, products, scale, share, brand, label, category, scan, limit,\n"
"             same_brand, popular, cls)\n"
"--\n\n"
"The content fallback's candidates (candidates.content_fallback), best first, at most limit:\n"
"groups are (related category, its score, its product ids cheapest first), of which the first\n"
"scan ids are scored share * score * (0.5 + 0.5 * sold / (sold + 5)) (sold:\n"
"items.get(id, 0) / scale), times 1.2 for the anchor's brand (None: no brand). products: the\n"
"catalog's id -> Product; label and category the anchor's; same_brand and popular the reasons'\n"
"formats. None where a score is NaN (then Python ranks them).");

static PyObject *content_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *groups, *items, *products, *brand, *label, *category, *same_fmt, *popular_fmt;
    PyTypeObject *cls;
    double scale, share;
    Py_ssize_t scan, limit;
    if (!PyArg_ParseTuple(args, "O!O!O!ddOOOnnOOO!:content_rows", &PyList_Type, &groups, &PyDict_Type, &items,
                          &PyDict_Type, &products, &scale, &share, &brand, &label, &category, &scan, &limit,
                          &same_fmt, &popular_fmt, &PyType_Type, &cls))
        return NULL;
    if (!PyType_IsSubtype(cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a tuple type (Candidate)");
        return NULL;
    }
    if (scale == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return NULL;
    }
    static PyObject *id_name = NULL, *price_name = NULL, *brand_name = NULL, *source = NULL, *zero = NULL;
    if (!id_name && !(id_name = PyUnicode_InternFromString("product_id"))) return NULL;
    if (!price_name && !(price_name = PyUnicode_InternFromString("price"))) return NULL;
    if (!brand_name && !(brand_name = PyUnicode_InternFromString("brand"))) return NULL;
    if (!source && !(source = PyUnicode_InternFromString("content"))) return NULL;
    if (!zero && !(zero = PyFloat_FromDouble(0.0))) return NULL;
    Py_ssize_t total = 0, g = PyList_GET_SIZE(groups);
    for (Py_ssize_t k = 0; k < g; k++) {
        PyObject *group = PyList_GET_ITEM(groups, k);
        if (!PyTuple_Check(group) || PyTuple_GET_SIZE(group) != 3 || !PyList_Check(PyTuple_GET_ITEM(group, 2))) {
            PyErr_SetString(PyExc_TypeError, "a group is (category, score, list of product ids)");
            return NULL;
        }
        Py_ssize_t m = PyList_GET_SIZE(PyTuple_GET_ITEM(group, 2));
        total += m < scan ? m : scan;
    }
    Key *keys = PyMem_Malloc(sizeof(Key) * (size_t)(total ? total : 1));
    /* per scored product: its id (borrowed from the group's list), its group, whether same brand */
    PyObject **ids = PyMem_Malloc(sizeof(PyObject *) * (size_t)(total ? total : 1));
    Py_ssize_t *group_of = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(total ? total : 1));
    char *branded = PyMem_Malloc((size_t)(total ? total : 1));
    PyObject *out = NULL;
    if (!keys || !ids || !group_of || !branded) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t k = 0; k < g; k++) {
        PyObject *group = PyList_GET_ITEM(groups, k), *list = PyTuple_GET_ITEM(group, 2);
        double weight = PyFloat_AsDouble(PyTuple_GET_ITEM(group, 1));
        if (weight == -1.0 && PyErr_Occurred()) goto done;
        weight = share * weight;                              /* CONTENT_SCORE * the category's score */
        Py_ssize_t m = PyList_GET_SIZE(list);
        if (m > scan) m = scan;
        for (Py_ssize_t j = 0; j < m; j++, at++) {
            PyObject *pid = PyList_GET_ITEM(list, j);
            double sold;
            if (count_of(items, pid, &sold) < 0) goto done;
            sold = sold / scale;
            double factor = 1.0;
            branded[at] = 0;
            if (brand != Py_None) {
                PyObject *p = PyDict_GetItemWithError(products, pid);       /* borrowed */
                if (!p) {
                    if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, pid);
                    goto done;
                }
                PyObject *pb = PyObject_GetAttr(p, brand_name);
                int same = pb ? same_brand(pb, brand) : -1;
                Py_XDECREF(pb);
                if (same < 0) goto done;
                if (same) factor = 1.2;
                branded[at] = (char)same;
            }
            keys[at] = (Key){weight * (0.5 + 0.5 * sold / (sold + 5.0)) * factor, at, at};
            ids[at] = pid;
            group_of[at] = k;
        }
    }
    Py_ssize_t top = limit < total ? (limit > 0 ? limit : 0) : total;
    if (keys_ranked(keys, total, top)) {
        Py_INCREF(Py_None);
        out = Py_None;
        goto done;
    }
    if (!(out = PyList_New(0))) goto done;
    for (Py_ssize_t i = 0; i < top; i++) {
        Py_ssize_t a = keys[i].at;
        PyObject *p = PyDict_GetItemWithError(products, ids[a]);      /* borrowed */
        if (!p) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, ids[a]);
            goto fail;
        }
        PyObject *related = PyTuple_GET_ITEM(PyList_GET_ITEM(groups, group_of[a]), 0);
        PyObject *why = branded[a] ? Py_BuildValue("(OOOO)", same_fmt, label, related, category)
                                   : Py_BuildValue("(OOO)", popular_fmt, related, category);
        if (append_candidate(out, cls, PyObject_GetAttr(p, id_name), PyFloat_FromDouble(keys[i].score), why,
                             PyObject_GetAttr(p, price_name), source, zero) < 0)
            goto fail;
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyMem_Free(keys);
    PyMem_Free(ids);
    PyMem_Free(group_of);
    PyMem_Free(branded);
    return out;
}

static PyMethodDef methods[] = {
    {"complements_scan", complements_scan, METH_VARARGS, complements_scan_doc},
    {"complements_rows", complements_rows, METH_VARARGS, complements_rows_doc},
    {"cross_sell_rows", cross_sell_rows, METH_VARARGS, cross_sell_rows_doc},
    {"count_pairs", count_pairs, METH_VARARGS, count_pairs_doc},
    {"candidate_values", candidate_values, METH_VARARGS, candidate_values_doc},
    {"eligible_candidates", eligible_candidates, METH_VARARGS, eligible_candidates_doc},
    {"repeat_blend", repeat_blend, METH_VARARGS, repeat_blend_doc},
    {"category_upsells", category_upsells, METH_VARARGS, category_upsells_doc},
    {"content_rows", content_rows, METH_VARARGS, content_rows_doc},
    {"ranking_rows", ranking_rows, METH_VARARGS, ranking_rows_doc},
    {"round_to", (PyCFunction)(void (*)(void))round_to, METH_FASTCALL, round_to_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "Compiled kernels of the pure core (the same results as their Python versions).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    if (PyType_Ready(&PairRowType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&PairRowType);
    if (PyModule_AddObject(m, "PairRow", (PyObject *)&PairRowType) < 0) {
        Py_DECREF(&PairRowType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
