/*
 * ia3.c — (IA)³ adapters from PEFT "IA3" directories, as a Graft plugin in plain C99 on
 * graft_plugin.h alone.
 *
 * PEFT's (IA)³ learns one vector l per adapted linear layer, saved under the key
 * base_model.model.<module>.ia3_l (ia3_l is a ParameterDict, so PEFT's saved key has no
 * ".weight"; the form base_model.model.<module>.ia3_l.weight is accepted too):
 *   - a module listed in feedforward_modules: l has shape [1, in] and scales the layer's INPUT,
 *     y = W (l ⊙ x) + b;
 *   - any other target: l has shape [out, 1] and scales the layer's OUTPUT, y = l ⊙ (W x + b).
 * Both map to host->add_channel_scale (which = 0 input, 1 output).
 *
 * adapter_config.json is read with the small bounded JSON scanner below (at most 1 MiB, nesting
 * at most 64 levels, every read bounds-checked). Only the list form of target_modules and
 * feedforward_modules is read; PEFT's single-regex form is refused with a clear message.
 */
#include "graft_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define IA3_CONFIG_LIMIT (1L << 20)
#define IA3_MAX_DEPTH 64
#define IA3_MAX_NAME 1024
#define IA3_MAX_NAMES 4096
#define IA3_MESSAGE 2048

static const char key_prefix[] = "base_model.model.";
/* PEFT saves ia3_l (a ParameterDict entry) without ".weight"; accept both forms. */
static const char *const key_suffixes[] = { ".ia3_l", ".ia3_l.weight" };

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                       */

static int is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int join(char *out, size_t cap, const char *dir, const char *name) {
    size_t n = strlen(dir);
    const char *sep = (n > 0 && dir[n - 1] == '/') ? "" : "/";
    int written = snprintf(out, cap, "%s%s%s", dir, sep, name);
    return written >= 0 && (size_t)written < cap;
}

/* Reads a regular file of at most IA3_CONFIG_LIMIT bytes, NUL-terminated; NULL on failure. */
static char *read_file(const char *path, size_t *length) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 || st.st_size > IA3_CONFIG_LIMIT)
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buffer = malloc((size_t)st.st_size + 1);
    size_t n = buffer ? fread(buffer, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buffer || n != (size_t)st.st_size) {
        free(buffer);
        return NULL;
    }
    buffer[n] = '\0';
    *length = n;
    return buffer;
}

/* ------------------------------------------------------------------------------------------ */
/* A bounded JSON scanner: validates the whole document, keeps the few top-level fields we need. */

typedef struct {
    const char *p;
    const char *end;
    const char *error; /* static text, set on the first failure */
} scanner;

typedef struct {
    int present;   /* the key appeared with a non-null value */
    int is_string; /* the value was a single string (PEFT's regex form) */
    char **names;
    size_t count;
} name_list;

typedef struct {
    char peft_type[64];
    int has_peft_type;
    name_list target_modules;
    name_list feedforward_modules;
    int modules_to_save; /* non-empty */
} ia3_config;

static int fail(scanner *s, const char *why) {
    if (!s->error) s->error = why;
    return 0;
}

static void skip_space(scanner *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int put_byte(char *out, size_t cap, size_t *n, unsigned c, int *overflow) {
    if (out && *n + 1 < cap) out[*n] = (char)c;
    else if (out) *overflow = 1;
    (*n)++;
    return 1;
}

static int hex4(scanner *s, unsigned *value) {
    *value = 0;
    for (int i = 0; i < 4; i++) {
        if (s->p >= s->end) return fail(s, "unterminated \\u escape");
        char c = *s->p++;
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return fail(s, "invalid \\u escape");
        *value = (*value << 4) | d;
    }
    return 1;
}

/* Scans a string at s->p (which is at '"'). Copies it into out (NUL-terminated) when out is not
   NULL; *overflow is set when it did not fit in cap bytes. */
static int scan_string(scanner *s, char *out, size_t cap, int *overflow) {
    size_t n = 0;
    int dummy = 0;
    if (!overflow) overflow = &dummy;
    *overflow = 0;
    if (s->p >= s->end || *s->p != '"') return fail(s, "expected a string");
    s->p++;
    for (;;) {
        if (s->p >= s->end) return fail(s, "unterminated string");
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"') break;
        if (c < 0x20) return fail(s, "control character in a string");
        if (c != '\\') {
            put_byte(out, cap, &n, c, overflow);
            continue;
        }
        if (s->p >= s->end) return fail(s, "unterminated string");
        c = (unsigned char)*s->p++;
        switch (c) {
        case '"': case '\\': case '/': put_byte(out, cap, &n, c, overflow); break;
        case 'b': put_byte(out, cap, &n, '\b', overflow); break;
        case 'f': put_byte(out, cap, &n, '\f', overflow); break;
        case 'n': put_byte(out, cap, &n, '\n', overflow); break;
        case 'r': put_byte(out, cap, &n, '\r', overflow); break;
        case 't': put_byte(out, cap, &n, '\t', overflow); break;
        case 'u': {
            unsigned cp;
            if (!hex4(s, &cp)) return 0;
            if (cp >= 0xD800 && cp < 0xDC00 && s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u') {
                unsigned low;
                s->p += 2;
                if (!hex4(s, &low)) return 0;
                cp = (low >= 0xDC00 && low < 0xE000) ? 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00) : 0xFFFD;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                cp = 0xFFFD;
            }
            if (cp == 0) return fail(s, "NUL character in a string");
            if (cp < 0x80) {
                put_byte(out, cap, &n, cp, overflow);
            } else if (cp < 0x800) {
                put_byte(out, cap, &n, 0xC0 | (cp >> 6), overflow);
                put_byte(out, cap, &n, 0x80 | (cp & 0x3F), overflow);
            } else if (cp < 0x10000) {
                put_byte(out, cap, &n, 0xE0 | (cp >> 12), overflow);
                put_byte(out, cap, &n, 0x80 | ((cp >> 6) & 0x3F), overflow);
                put_byte(out, cap, &n, 0x80 | (cp & 0x3F), overflow);
            } else {
                put_byte(out, cap, &n, 0xF0 | (cp >> 18), overflow);
                put_byte(out, cap, &n, 0x80 | ((cp >> 12) & 0x3F), overflow);
                put_byte(out, cap, &n, 0x80 | ((cp >> 6) & 0x3F), overflow);
                put_byte(out, cap, &n, 0x80 | (cp & 0x3F), overflow);
            }
            break;
        }
        default: return fail(s, "invalid escape in a string");
        }
    }
    if (out && cap > 0) out[n < cap ? n : cap - 1] = '\0';
    return 1;
}

static int is_digit(scanner *s) { return s->p < s->end && *s->p >= '0' && *s->p <= '9'; }

static int literal(scanner *s, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return fail(s, "invalid literal");
    s->p += n;
    return 1;
}

static int skip_value(scanner *s, int depth) {
    if (depth >= IA3_MAX_DEPTH) return fail(s, "nested too deeply");
    skip_space(s);
    if (s->p >= s->end) return fail(s, "unexpected end of file");
    char c = *s->p;
    if (c == '"') return scan_string(s, NULL, 0, NULL);
    if (c == 't') return literal(s, "true");
    if (c == 'f') return literal(s, "false");
    if (c == 'n') return literal(s, "null");
    if (c == 'N') return literal(s, "NaN");
    if (c == 'I') return literal(s, "Infinity");
    if (c == '-' || (c >= '0' && c <= '9')) {
        if (c == '-') {
            s->p++;
            if (s->p < s->end && *s->p == 'I') return literal(s, "Infinity");
        }
        if (!is_digit(s)) return fail(s, "invalid number");
        while (is_digit(s)) s->p++;
        if (s->p < s->end && *s->p == '.') {
            s->p++;
            if (!is_digit(s)) return fail(s, "invalid number");
            while (is_digit(s)) s->p++;
        }
        if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
            s->p++;
            if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
            if (!is_digit(s)) return fail(s, "invalid number");
            while (is_digit(s)) s->p++;
        }
        return 1;
    }
    if (c == '[' || c == '{') {
        char close = c == '[' ? ']' : '}';
        s->p++;
        skip_space(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 1;
        }
        for (;;) {
            skip_space(s);
            if (c == '{') {
                if (!scan_string(s, NULL, 0, NULL)) return 0;
                skip_space(s);
                if (s->p >= s->end || *s->p != ':') return fail(s, "expected ':'");
                s->p++;
            }
            if (!skip_value(s, depth + 1)) return 0;
            skip_space(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == close) {
                s->p++;
                return 1;
            }
            return fail(s, c == '[' ? "expected ',' or ']'" : "expected ',' or '}'");
        }
    }
    return fail(s, "unexpected character");
}

static void free_names(name_list *list) {
    for (size_t i = 0; i < list->count; i++) free(list->names[i]);
    free(list->names);
    memset(list, 0, sizeof *list);
}

/* Reads null, a string (regex form, only flagged) or a list of strings. */
static int scan_names(scanner *s, name_list *list) {
    free_names(list);
    skip_space(s);
    if (s->p >= s->end) return fail(s, "unexpected end of file");
    if (*s->p == 'n') return literal(s, "null");
    list->present = 1;
    if (*s->p == '"') {
        list->is_string = 1;
        return scan_string(s, NULL, 0, NULL);
    }
    if (*s->p != '[') return fail(s, "target_modules / feedforward_modules must be a list of strings");
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 1;
    }
    for (;;) {
        char name[IA3_MAX_NAME];
        int overflow = 0;
        skip_space(s);
        if (s->p >= s->end || *s->p != '"') return fail(s, "target_modules / feedforward_modules must be a list of strings");
        if (!scan_string(s, name, sizeof name, &overflow)) return 0;
        if (overflow) return fail(s, "a module name is longer than 1023 bytes");
        if (list->count >= IA3_MAX_NAMES) return fail(s, "more than 4096 module names");
        char **grown = realloc(list->names, (list->count + 1) * sizeof *grown);
        if (!grown) return fail(s, "out of memory");
        list->names = grown;
        if (!(list->names[list->count] = malloc(strlen(name) + 1))) return fail(s, "out of memory");
        strcpy(list->names[list->count++], name);
        skip_space(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 1;
        }
        return fail(s, "expected ',' or ']'");
    }
}

static int scan_config(scanner *s, ia3_config *config) {
    memset(config, 0, sizeof *config);
    skip_space(s);
    if (s->p >= s->end || *s->p != '{') return fail(s, "adapter_config.json must hold a JSON object");
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        for (;;) {
            char key[64];
            int overflow = 0;
            skip_space(s);
            if (!scan_string(s, key, sizeof key, &overflow)) return 0;
            if (overflow) key[0] = '\0'; /* longer than any key we read */
            skip_space(s);
            if (s->p >= s->end || *s->p != ':') return fail(s, "expected ':'");
            s->p++;
            skip_space(s);
            if (strcmp(key, "peft_type") == 0 && s->p < s->end && *s->p == '"') {
                if (!scan_string(s, config->peft_type, sizeof config->peft_type, &overflow)) return 0;
                config->has_peft_type = !overflow;
            } else if (strcmp(key, "target_modules") == 0) {
                if (!scan_names(s, &config->target_modules)) return 0;
            } else if (strcmp(key, "feedforward_modules") == 0) {
                if (!scan_names(s, &config->feedforward_modules)) return 0;
            } else if (strcmp(key, "modules_to_save") == 0) {
                skip_space(s);
                const char *start = s->p;
                if (!skip_value(s, 1)) return 0;
                /* anything but null or [] asks for fully trained modules */
                size_t n = (size_t)(s->p - start);
                int empty_list = 0;
                if (n >= 2 && start[0] == '[') {
                    empty_list = 1;
                    for (size_t i = 1; i + 1 < n; i++)
                        if (!(start[i] == ' ' || start[i] == '\t' || start[i] == '\n' || start[i] == '\r')) empty_list = 0;
                }
                config->modules_to_save = !(empty_list || (n == 4 && memcmp(start, "null", 4) == 0));
            } else {
                if (!skip_value(s, 1)) return 0;
            }
            skip_space(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == '}') {
                s->p++;
                break;
            }
            return fail(s, "expected ',' or '}'");
        }
    }
    skip_space(s);
    if (s->p != s->end) return fail(s, "unexpected text after the JSON object");
    return 1;
}

static void free_config(ia3_config *config) {
    free_names(&config->target_modules);
    free_names(&config->feedforward_modules);
}

/* Reads dir/adapter_config.json. Returns GRAFT_PLUGIN_OK or a status with `message` filled. */
static int32_t read_config(const char *dir, ia3_config *config, char *message, size_t cap) {
    char path[4096];
    size_t length = 0;
    memset(config, 0, sizeof *config);
    if (!join(path, sizeof path, dir, "adapter_config.json")) {
        snprintf(message, cap, "ia3: the path %.200s is too long", dir);
        return GRAFT_PLUGIN_INVALID_ARGUMENT;
    }
    char *text = read_file(path, &length);
    if (!text) {
        snprintf(message, cap, "ia3: cannot read %.1000s (missing, unreadable, or larger than 1 MiB)", path);
        return GRAFT_PLUGIN_IO;
    }
    scanner s = { text, text + length, NULL };
    int ok = scan_config(&s, config);
    if (!ok) {
        snprintf(message, cap, "ia3: %.1000s is not a valid adapter config: %s at byte %ld", path,
                 s.error ? s.error : "invalid JSON", (long)(s.p - text));
        free_config(config);
    }
    free(text);
    return ok ? GRAFT_PLUGIN_OK : GRAFT_PLUGIN_INVALID_DATA;
}

/* ------------------------------------------------------------------------------------------ */
/* Matching, as PEFT does it                                                                   */

static int ends_with(const char *text, const char *suffix) {
    size_t n = strlen(text), m = strlen(suffix);
    return m <= n && memcmp(text + n - m, suffix, m) == 0;
}

/* check_target_module_exists (list form): the name itself or a ".name" suffix. */
static int is_target(const name_list *targets, const char *module) {
    if (!targets->present) return 1; /* nothing to check against: the file is the truth */
    for (size_t i = 0; i < targets->count; i++) {
        const char *t = targets->names[i];
        size_t n = strlen(module), m = strlen(t);
        if (strcmp(module, t) == 0) return 1;
        if (m < n && module[n - m - 1] == '.' && ends_with(module, t)) return 1;
    }
    return 0;
}

/* IA3Model._check_target_module_feedforward (list form): a plain suffix, without a dot. */
static int is_feedforward(const name_list *ff, const char *module) {
    for (size_t i = 0; i < ff->count; i++)
        if (ends_with(module, ff->names[i])) return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The plugin                                                                                  */

static int32_t ia3_claims(void *ctx, const char *path) {
    (void)ctx;
    char message[IA3_MESSAGE];
    ia3_config config;
    if (!path || !is_directory(path)) return 0;
    if (read_config(path, &config, message, sizeof message) != GRAFT_PLUGIN_OK) return 0;
    int ours = config.has_peft_type && strcmp(config.peft_type, "IA3") == 0;
    free_config(&config);
    return ours;
}

typedef struct {
    uint32_t site;
    int32_t which;
    const float *values;
    int64_t count;
} planned_scale;

static int32_t failed(const graft_host_api *host, int32_t status, const char *message) {
    host->set_error(message);
    return status;
}

static int32_t load_open(const graft_host_api *host, const char *dir, graft_adapter_builder *builder,
                         const ia3_config *config, graft_safetensors *file, char *message) {
    size_t count = host->safetensors_count(file);
    if (count == 0) {
        snprintf(message, IA3_MESSAGE, "ia3: %.1000s/adapter_model.safetensors holds no tensors", dir);
        return failed(host, GRAFT_PLUGIN_INVALID_DATA, message);
    }
    planned_scale *plan = malloc(count * sizeof *plan);
    if (!plan) return failed(host, GRAFT_PLUGIN_LIMIT_EXCEEDED, "ia3: out of memory");
    int32_t status = GRAFT_PLUGIN_OK;
    for (size_t i = 0; i < count && status == GRAFT_PLUGIN_OK; i++) {
        graft_st_tensor t;
        memset(&t, 0, sizeof t);
        t.struct_size = sizeof t;
        if ((status = host->safetensors_get(file, i, &t)) != GRAFT_PLUGIN_OK) break; /* host's message */
        const char *key = t.name ? t.name : "";
        size_t n = strlen(key), pn = sizeof key_prefix - 1, sn = 0;
        for (size_t k = 0; k < sizeof key_suffixes / sizeof key_suffixes[0]; k++)
            if (ends_with(key, key_suffixes[k])) sn = strlen(key_suffixes[k]);
        if (sn == 0 || n <= pn + sn || strncmp(key, key_prefix, pn) != 0 || n - pn - sn >= IA3_MAX_NAME) {
            snprintf(message, IA3_MESSAGE,
                     "ia3: adapter_model.safetensors holds %.500s; the IA3 plugin reads only "
                     "base_model.model.<module>.ia3_l (or .ia3_l.weight)", key);
            status = failed(host, GRAFT_PLUGIN_UNSUPPORTED, message);
            break;
        }
        char module[IA3_MAX_NAME];
        memcpy(module, key + pn, n - pn - sn);
        module[n - pn - sn] = '\0';
        if (!is_target(&config->target_modules, module)) {
            snprintf(message, IA3_MESSAGE,
                     "ia3: adapter_model.safetensors adapts %.500s, which target_modules in adapter_config.json does not name",
                     module);
            status = failed(host, GRAFT_PLUGIN_INVALID_DATA, message);
            break;
        }
        int ff = is_feedforward(&config->feedforward_modules, module);
        size_t site;
        if ((status = host->find_site(builder, module, &site)) != GRAFT_PLUGIN_OK) break; /* host lists close sites */
        graft_site_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        if ((status = host->site_info(builder, site, &info)) != GRAFT_PLUGIN_OK) break;
        int64_t want = ff ? info.in_features : info.out_features;
        int64_t rows = t.rank == 2 && t.shape ? t.shape[0] : -1, cols = t.rank == 2 && t.shape ? t.shape[1] : -1;
        int shape_ok = ff ? (rows == 1 && cols == want) : (rows == want && cols == 1);
        if (!shape_ok || t.count != want || !t.data) {
            char shape[128] = "[";
            for (uint32_t d = 0; d < t.rank && d < 8 && t.shape; d++)
                snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? ", " : "", (long long)t.shape[d]);
            strncat(shape, "]", sizeof shape - strlen(shape) - 1);
            snprintf(message, IA3_MESSAGE,
                     "ia3: %.500s has shape %s; expected %s for site %.500s (in_features %lld, out_features %lld; "
                     "%s, so it scales the %s)",
                     key, shape, ff ? "[1, in_features]" : "[out_features, 1]", info.name ? info.name : module,
                     (long long)info.in_features, (long long)info.out_features,
                     ff ? "a feedforward module" : "not in feedforward_modules", ff ? "input" : "output");
            status = failed(host, GRAFT_PLUGIN_SHAPE_MISMATCH, message);
            break;
        }
        plan[i].site = (uint32_t)site;
        plan[i].which = ff ? 0 : 1;
        plan[i].values = t.data;
        plan[i].count = want;
    }
    for (size_t i = 0; i < count && status == GRAFT_PLUGIN_OK; i++)
        status = host->add_channel_scale(builder, plan[i].site, plan[i].which, plan[i].values, plan[i].count);
    free(plan);
    return status;
}

static int32_t ia3_load(void *ctx, const char *path, graft_adapter_builder *builder) {
    const graft_host_api *host = ctx;
    char message[IA3_MESSAGE];
    char weights[4096];
    ia3_config config;
    if (!path || !builder) return failed(host, GRAFT_PLUGIN_INVALID_ARGUMENT, "ia3: load needs a path and a builder");
    if (!is_directory(path)) {
        snprintf(message, sizeof message, "ia3: %.1000s is not a directory; a PEFT (IA)3 adapter is a directory "
                 "with adapter_config.json and adapter_model.safetensors", path);
        return failed(host, GRAFT_PLUGIN_IO, message);
    }
    int32_t status = read_config(path, &config, message, sizeof message);
    if (status != GRAFT_PLUGIN_OK) return failed(host, status, message);

    if (!config.has_peft_type || strcmp(config.peft_type, "IA3") != 0) {
        snprintf(message, sizeof message, "ia3: adapter_config.json has peft_type \"%s\"; the IA3 plugin reads only \"IA3\"",
                 config.has_peft_type ? config.peft_type : "(missing)");
        status = failed(host, GRAFT_PLUGIN_UNSUPPORTED, message);
    } else if (config.target_modules.is_string || config.feedforward_modules.is_string) {
        status = failed(host, GRAFT_PLUGIN_UNSUPPORTED,
                        "ia3: adapter_config.json gives target_modules or feedforward_modules as one regular expression; "
                        "the IA3 plugin reads only the list form (list the module names)");
    } else if (config.modules_to_save) {
        status = failed(host, GRAFT_PLUGIN_UNSUPPORTED,
                        "ia3: adapter_config.json asks for fully trained modules (\"modules_to_save\"), which the IA3 plugin does not support");
    } else if (!join(weights, sizeof weights, path, "adapter_model.safetensors")) {
        status = failed(host, GRAFT_PLUGIN_INVALID_ARGUMENT, "ia3: the adapter path is too long");
    } else if (!exists(weights)) {
        char pickle[4096];
        if (join(pickle, sizeof pickle, path, "adapter_model.bin") && exists(pickle)) {
            snprintf(message, sizeof message,
                     "ia3: %.1000s has only adapter_model.bin. adapter_model.bin is a Python pickle, which can execute code; "
                     "Graft reads only adapter_model.safetensors (convert with: python -c \"import torch, safetensors.torch as st; "
                     "st.save_file(torch.load('adapter_model.bin', weights_only=True), 'adapter_model.safetensors')\")", path);
            status = failed(host, GRAFT_PLUGIN_UNSUPPORTED, message);
        } else {
            snprintf(message, sizeof message, "ia3: %.1000s has no adapter_model.safetensors", path);
            status = failed(host, GRAFT_PLUGIN_IO, message);
        }
    } else {
        graft_safetensors *file = NULL;
        status = host->safetensors_open(weights, &file); /* on failure the host set the message */
        if (status == GRAFT_PLUGIN_OK) {
            status = load_open(host, path, builder, &config, file, message);
            host->safetensors_close(file);
        }
        if (status == GRAFT_PLUGIN_OK) {
            /* name = the directory's last component */
            char name[512];
            size_t n = strlen(path);
            while (n > 1 && path[n - 1] == '/') n--;
            size_t start = n;
            while (start > 0 && path[start - 1] != '/') start--;
            if (n - start < sizeof name) {
                memcpy(name, path + start, n - start);
                name[n - start] = '\0';
                host->set_name(builder, name);
            }
        }
    }
    free_config(&config);
    return status;
}

GRAFT_PLUGIN_EXPORT const graft_plugin *graft_plugin_entry(const graft_host_api *host) {
    if (!host) return NULL;
    if ((host->abi_version >> 16) != GRAFT_PLUGIN_ABI_MAJOR) {
        if (host->log) host->log(GRAFT_LOG_ERROR, "ia3: the host's plugin ABI major differs from 1");
        return NULL;
    }
    if (host->struct_size < sizeof(graft_host_api)) {
        if (host->log) host->log(GRAFT_LOG_ERROR, "ia3: the host's graft_host_api is smaller than ABI 1.0's");
        return NULL;
    }
    /* One table per call, with that host in ctx: two hosts in one process (a test's fake host
       and the real one) must not overwrite each other's. Never freed: the plugin stays loaded. */
    graft_plugin *table = malloc(sizeof *table);
    if (!table) return NULL;
    memset(table, 0, sizeof *table);
    table->abi_version = GRAFT_PLUGIN_ABI_VERSION;
    table->struct_size = sizeof *table;
    table->name = "ia3";
    table->version = "1.0.0";
    table->description = "PEFT (IA)3 directories (adapter_config.json + adapter_model.safetensors) as channel scales";
    table->claims = ia3_claims;
    table->load = ia3_load;
    table->ctx = (void *)host;
    return table;
}
