/*
 * graft_plugin.h — the adapter-plugin ABI of Graft. Pure C, versioned, hand-written, canonical.
 *
 * A plugin is a shared object that turns adapter files into *terms of one primitive* at the
 * backbone's linear layers ("sites"):
 *
 *     y_t = out_scale ⊙ ( W (in_scale ⊙ x_t) + Σ_k g_k[t] · s_k · B_k σ_k(A_k x_t) )
 *
 *   A_k [r_k × in], B_k [out × r_k], scale s_k, activation σ_k (identity for LoRA), per-token
 *   gate g_k[t] (1 unless a gate callback sets it), optional per-channel vectors in_scale [in]
 *   and out_scale [out] ((IA)³). Plugins own file formats and configs; the host owns the graph,
 *   sites, memory, threads and kernels, and lends plugins the function table below.
 *
 * A minimal plugin (see docs/PLUGINS.md for a complete one):
 *
 *     #include "graft_plugin.h"
 *     static const graft_host_api *host;
 *     static int32_t claims(void *ctx, const char *path) { ... return 1 if path is ours ... }
 *     static int32_t load(void *ctx, const char *path, graft_adapter_builder *b) {
 *         size_t site;
 *         if (host->find_site(b, "encoder.layer.0.attention.self.query", &site) != GRAFT_PLUGIN_OK)
 *             return GRAFT_PLUGIN_INVALID_ARGUMENT;         // the host already set the message
 *         graft_lowrank_term t = { sizeof t, (uint32_t)site, 8, A, B, 2.0f, GRAFT_ACTIVATION_IDENTITY };
 *         return host->add_lowrank(b, &t);                 // the host copies A and B
 *     }
 *     static const graft_plugin table = { GRAFT_PLUGIN_ABI_VERSION, sizeof table, "mine", "1.0",
 *                                         "what it loads", claims, load, NULL };
 *     GRAFT_PLUGIN_EXPORT const graft_plugin *graft_plugin_entry(const graft_host_api *h) {
 *         host = h;
 *         return &table;
 *     }
 *
 * The example keeps `host` in a global for brevity: a process has one Graft host. A plugin that
 * may be entered by several hosts (a test harness beside the real library, say) should return
 * a table per entry call and keep the host in that table's `ctx` (Plugins/examples/ia3 does).
 *
 * Versioning: GRAFT_PLUGIN_ABI_VERSION is (major << 16) | minor. The host refuses a plugin whose
 * major differs from its own, naming both versions. Within a major, structs only grow at the
 * end; every struct starts with `struct_size` (or, for the plugin table, abi_version then
 * struct_size) and readers use only the fields that size covers.
 *
 * Lifetime and threads: the host dlopens a plugin with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE
 * and never unloads it. `claims` and `load` may be called from any thread, possibly at once
 * for different paths: keep them free of unsynchronised global state. Gate callbacks run on the
 * thread of the session that runs the model. Strings crossing the ABI are UTF-8 and
 * NUL-terminated; pointers the host returns stay valid as the function documents.
 */
#ifndef GRAFT_PLUGIN_H
#define GRAFT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GRAFT_PLUGIN_ABI_MAJOR 1
#define GRAFT_PLUGIN_ABI_MINOR 2
#define GRAFT_PLUGIN_ABI_VERSION ((uint32_t)((GRAFT_PLUGIN_ABI_MAJOR << 16) | GRAFT_PLUGIN_ABI_MINOR))

#define GRAFT_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Status codes: the same numbers as graft.h's graft_status. */
#define GRAFT_PLUGIN_OK 0
#define GRAFT_PLUGIN_INVALID_ARGUMENT 1
#define GRAFT_PLUGIN_INVALID_MODEL 2
#define GRAFT_PLUGIN_UNSUPPORTED 3
#define GRAFT_PLUGIN_IO 4
#define GRAFT_PLUGIN_SHAPE_MISMATCH 5
#define GRAFT_PLUGIN_LIMIT_EXCEEDED 6
#define GRAFT_PLUGIN_INVALID_DATA 7
#define GRAFT_PLUGIN_INTERNAL 8

/* Activations between A and B. */
#define GRAFT_ACTIVATION_IDENTITY 0
#define GRAFT_ACTIVATION_RELU 1
#define GRAFT_ACTIVATION_GELU 2
#define GRAFT_ACTIVATION_SILU 3

/* Router gates (since 1.1): how a router's logits z = W_r x + b_r become expert weights. */
#define GRAFT_GATE_SOFTMAX 0    /* p = softmax(z) over all experts */
#define GRAFT_GATE_TOPK 1       /* softmax, keep the top_k largest; renormalise them if asked */
#define GRAFT_GATE_THRESHOLD 2  /* softmax, keep experts with p >= threshold (a per-token count);
                                   renormalise if asked */
#define GRAFT_GATE_SIGMOID 3    /* p = sigmoid(z), each expert independently */

/* Block kinds (since 1.2): a subgraph of several sites that a block mixture replaces. */
#define GRAFT_BLOCK_GATED_MLP 0 /* y = down( act(gate(x)) ⊙ up(x) ), Llama / Mistral / Qwen2 MLP */
/* The projections of a GRAFT_BLOCK_GATED_MLP block, for graft_block_delta.projection. */
#define GRAFT_BLOCK_PROJ_GATE 0
#define GRAFT_BLOCK_PROJ_UP 1
#define GRAFT_BLOCK_PROJ_DOWN 2

/* Log levels for graft_host_api.log. */
#define GRAFT_LOG_DEBUG 0
#define GRAFT_LOG_INFO 1
#define GRAFT_LOG_WARNING 2
#define GRAFT_LOG_ERROR 3

/* An adapter under construction; host-owned, valid during one `load` call. */
typedef struct graft_adapter_builder graft_adapter_builder;
/* An open safetensors file; host-owned until safetensors_close. */
typedef struct graft_safetensors graft_safetensors;

/* A linear layer of the backbone that adapters can attach to. */
typedef struct graft_site_info {
    uint32_t struct_size;      /* set by the caller to sizeof(graft_site_info) */
    uint32_t index;            /* 0-based site index */
    const char *name;          /* source module name, e.g. "encoder.layer.0.attention.self.query";
                                  valid while the model lives */
    const char *node_name;     /* the ONNX node (MatMul or Gemm) */
    int64_t in_features;
    int64_t out_features;
} graft_site_info;

/* A tensor of a safetensors file, read by the host and converted to float32. */
typedef struct graft_st_tensor {
    uint32_t struct_size;      /* set by the caller to sizeof(graft_st_tensor) */
    uint32_t rank;
    const char *name;          /* valid until safetensors_close */
    const int64_t *shape;      /* [rank]; valid until safetensors_close */
    const float *data;         /* row-major float32 elements; valid until safetensors_close */
    int64_t count;             /* number of elements */
    const char *file_dtype;    /* dtype in the file: "F32", "F16", "BF16", "F64" */
} graft_st_tensor;

/* Per-token gate: writes gates[t] for t in [0, tokens) from the site's input rows x
   [tokens × in]. Called on the running session's thread; must not block or allocate much. */
typedef void (*graft_gate_fn)(void *gate_ctx, const float *x, int64_t tokens, int64_t in, float *gates);

/* One low-rank term at a site. */
typedef struct graft_lowrank_term {
    uint32_t struct_size;      /* sizeof(graft_lowrank_term) */
    uint32_t site;             /* site index */
    uint32_t rank;             /* r >= 1 */
    const float *a;            /* [rank × in_features] row-major; copied by the host */
    const float *b;            /* [out_features × rank] row-major; copied by the host */
    float scale;               /* s */
    int32_t activation;        /* GRAFT_ACTIVATION_* between A and B */
    graft_gate_fn gate;        /* optional (NULL: g = 1) */
    void *gate_ctx;            /* passed to gate; must live as long as the plugin */
    /* Since 1.1 (read only when struct_size covers them): */
    uint32_t router;           /* 0: not routed; else an id from add_router at the same site:
                                  g[t] is that router's weight for `expert` on token t */
    uint32_t expert;           /* expert index within the router */
    uint32_t modalities;       /* 0: every token; else a bit mask: bit m set means the term acts
                                  on tokens whose modality id (set per run by the caller) is m */
} graft_lowrank_term;

/* A router at a site (since 1.1): z = W_r x + b_r over `experts` experts, turned into
   per-token expert weights by `gate`. Terms name it through graft_lowrank_term.router. */
typedef struct graft_router {
    uint32_t struct_size;      /* sizeof(graft_router) */
    uint32_t site;             /* site index */
    uint32_t experts;          /* E >= 1 */
    int32_t gate;              /* GRAFT_GATE_* */
    const float *weight;       /* [E × in_features] row-major; copied by the host */
    const float *bias;         /* [E] or NULL; copied */
    uint32_t top_k;            /* GRAFT_GATE_TOPK: 1 <= top_k <= E */
    int32_t renormalize;       /* TOPK / THRESHOLD: 1 to rescale the kept weights to sum 1 */
    float threshold;           /* GRAFT_GATE_THRESHOLD: keep p >= threshold */
    /* Since 1.2 (read only when struct_size covers it): */
    const uint32_t *expert_modalities; /* [E] or NULL (every expert serves every token). Expert e
                                  serves the tokens whose modality id m has bit m set in
                                  expert_modalities[e] (0: every token, a shared expert). The
                                  gate runs per token over the experts serving it only: their
                                  softmax, top-k among them (k capped at their number), the rest
                                  weight 0; a token no expert serves gets weight 0 everywhere
                                  (the base layer). Needs modality ids with the run. Copied. */
} graft_router;

/* Generated low-rank terms (since 1.2): the factors of a term come, per request, from a
   generator — an ONNX model the host loads and runs itself — whose inputs are auxiliary tensors
   the caller passes with the run (e.g. an image's visual features, VLoRA). Either factor may
   instead be a fixed learned matrix. At the site the term adds y += s · B (A x), like LoRA. */
typedef struct graft_generated_term {
    uint32_t struct_size;      /* sizeof(graft_generated_term) */
    uint32_t site;             /* site index */
    uint32_t rank;             /* r >= 1 */
    float scale;               /* s */
    const char *a_output;      /* name of the generator output giving A [rank × in_features]; or
                                  NULL when a_fixed is given */
    const float *a_fixed;      /* fixed A [rank × in_features] row-major (copied), or NULL */
    const char *b_output;      /* generator output giving B [out_features × rank]; or NULL */
    const float *b_fixed;      /* fixed B [out_features × rank] row-major (copied), or NULL */
} graft_generated_term;

/* A generator declaration (since 1.2). The host loads `model_path` with its own ONNX importer,
   checks that its only graph input is `aux_input` and that every graph output is used by
   exactly one factor of `terms` (and no factor names an output it lacks), and runs it per
   request on the auxiliary tensor of that name. */
typedef struct graft_generator {
    uint32_t struct_size;      /* sizeof(graft_generator) */
    const char *model_path;    /* the generator's .onnx file, relative to the adapter's folder
                                  (the path passed to load) and confined to it: absolute paths,
                                  ".." and symlinks leading out are refused */
    const char *aux_input;     /* auxiliary input name the caller passes, e.g. "image_features";
                                  the generator's graph input of that name */
    const graft_generated_term *terms;
    uint32_t term_count;
} graft_generator;

/* A block mixture (since 1.2): a mixture of experts over a whole block rather than one site.
   For GRAFT_BLOCK_GATED_MLP with router weights w[t, e] (the router's gate applied to the block
   input x_t) and expert e's low-rank deltas δ_{p,e}(v) = s · B σ(A v) on projection p (0 when the
   expert has none):

       h_{t,e} = act(W_g x_t + δ_{g,e}(x_t)) ⊙ (W_u x_t + δ_{u,e}(x_t))
       y_t     = Σ_e w[t,e] · (W_d h_{t,e} + δ_{d,e}(h_{t,e}))

   so the nonlinearity sits inside each expert (MixLoRA). `act` replaces the graph's own
   activation between gate and up. The host evaluates it with the base products W_g x, W_u x
   computed once for all experts, and W_d once on Σ_e w[t,e] h_{t,e} (linearity). The three sites
   must form a block the host recognised in the graph (gate and up read the same input, an
   elementwise chain from gate's output times up's output feeds down; no biases). */
typedef struct graft_block_mixture {
    uint32_t struct_size;      /* sizeof(graft_block_mixture) */
    int32_t kind;              /* GRAFT_BLOCK_GATED_MLP */
    uint32_t gate_site;        /* site indices of the block's projections */
    uint32_t up_site;
    uint32_t down_site;
    int32_t activation;        /* GRAFT_ACTIVATION_RELU / GELU (erf) / SILU: act in the formula */
    uint32_t router;           /* id from add_router at gate_site: w[t, e]; its expert count is E */
} graft_block_mixture;

/* One expert's low-rank delta on one projection of a block mixture (since 1.2). */
typedef struct graft_block_delta {
    uint32_t struct_size;      /* sizeof(graft_block_delta) */
    uint32_t block;            /* id from add_block_mixture */
    uint32_t expert;           /* < the router's expert count */
    int32_t projection;        /* GRAFT_BLOCK_PROJ_*; at most one delta per (expert, projection) */
    uint32_t rank;             /* r >= 1 */
    const float *a;            /* [rank × in_features of that projection's site]; copied */
    const float *b;            /* [out_features × rank]; copied */
    float scale;               /* s */
    int32_t activation;        /* GRAFT_ACTIVATION_* between A and B (IDENTITY for LoRA) */
} graft_block_delta;

/* What the host lends a plugin. Every function is thread-safe unless it says otherwise. */
typedef struct graft_host_api {
    uint32_t abi_version;      /* the host's GRAFT_PLUGIN_ABI_VERSION */
    uint32_t struct_size;      /* sizeof(graft_host_api) as the host knows it */

    /* Logging through the host (the host decides where it goes). */
    void (*log)(int32_t level, const char *message);
    /* Sets the message the caller of graft_adapter_load will see (per thread). Call it
       before returning an error status from `load`. */
    void (*set_error)(const char *message);

    /* Memory: 64-byte aligned. free(NULL) is a no-op. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *pointer);

    /* C[m×n] = alpha · op(A) · op(B) + beta · C, row-major, float32 (op: transpose if trans_*). */
    void (*sgemm)(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc);

    /* Safetensors: open validates the whole header (offsets, dtypes, sizes) first. */
    int32_t (*safetensors_open)(const char *path, graft_safetensors **out);
    void (*safetensors_close)(graft_safetensors *file);            /* NULL is a no-op */
    size_t (*safetensors_count)(const graft_safetensors *file);
    /* The index-th tensor (in file order) or the one named `name`; GRAFT_PLUGIN_INVALID_ARGUMENT
       when out of range / absent. `out->struct_size` must be set by the caller. */
    int32_t (*safetensors_get)(const graft_safetensors *file, size_t index, graft_st_tensor *out);
    int32_t (*safetensors_find)(const graft_safetensors *file, const char *name, graft_st_tensor *out);

    /* Sites of the model the adapter is being built for. */
    size_t (*site_count)(const graft_adapter_builder *builder);
    int32_t (*site_info)(const graft_adapter_builder *builder, size_t index, graft_site_info *out);
    /* Finds the site whose module name equals `module` or ends with "." + module (PEFT keys
       carry prefixes such as "base_model.model."; strip those first). When none or several
       match, returns GRAFT_PLUGIN_INVALID_ARGUMENT and sets an error that lists the closest
       site names. */
    int32_t (*find_site)(const graft_adapter_builder *builder, const char *module, size_t *index);

    /* Terms. The host copies all arrays; the plugin may free them after the call. */
    int32_t (*add_lowrank)(graft_adapter_builder *builder, const graft_lowrank_term *term);
    /* Per-channel scale at a site: which = 0 scales the site's input (in_features values),
       which = 1 its output (out_features values). */
    int32_t (*add_channel_scale)(graft_adapter_builder *builder, uint32_t site, int32_t which,
                                 const float *values, int64_t count);
    /* Names the adapter (shown by tools); optional. */
    int32_t (*set_name)(graft_adapter_builder *builder, const char *name);

    /* Since 1.1 — check struct_size covers it before calling. Adds a router; writes its id
       (>= 1) for graft_lowrank_term.router. */
    int32_t (*add_router)(graft_adapter_builder *builder, const graft_router *router, uint32_t *id);

    /* Since 1.2 — check struct_size covers it before calling. Declares the adapter's generator
       (at most one per adapter); the adapter then needs its auxiliary input at run time. The
       host copies everything. */
    int32_t (*add_generator)(graft_adapter_builder *builder, const graft_generator *generator);

    /* Since 1.2 — check struct_size covers them before calling. Adds a block mixture over three
       sites (an error naming the sites when they do not form a block of the `kind` in this
       model); writes its id (>= 1) for graft_block_delta.block. A block takes one mixture per
       adapter. */
    int32_t (*add_block_mixture)(graft_adapter_builder *builder, const graft_block_mixture *mixture, uint32_t *id);
    /* Adds one expert's delta on one projection of a block mixture. */
    int32_t (*add_block_delta)(graft_adapter_builder *builder, const graft_block_delta *delta);
} graft_host_api;

/* What a plugin returns from graft_plugin_entry. Static storage is fine: the plugin is never
   unloaded. */
typedef struct graft_plugin {
    uint32_t abi_version;      /* GRAFT_PLUGIN_ABI_VERSION the plugin was built with */
    uint32_t struct_size;      /* sizeof(graft_plugin) as the plugin knows it */
    const char *name;          /* short id, e.g. "lora" */
    const char *version;       /* the plugin's own version */
    const char *description;   /* one line */
    /* Returns 1 when this plugin reads the file or directory at `path`, else 0. Cheap: it may
       look at file names and small config files, not weights. */
    int32_t (*claims)(void *ctx, const char *path);
    /* Builds the adapter at `path` by calling the host's add_* functions on `builder`.
       Returns GRAFT_PLUGIN_OK, or an error status after host->set_error(message). */
    int32_t (*load)(void *ctx, const char *path, graft_adapter_builder *builder);
    void *ctx;                 /* passed back to claims and load */
} graft_plugin;

/* The one exported symbol. Returns NULL to refuse loading (after host->log). */
typedef const graft_plugin *(*graft_plugin_entry_fn)(const graft_host_api *host);
#define GRAFT_PLUGIN_ENTRY_SYMBOL "graft_plugin_entry"

#ifdef __cplusplus
}
#endif
#endif
