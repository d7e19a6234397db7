// C++ test of bindings/cpp/graft.hpp: move-only handles, exceptions with status and message,
// introspection, runs (library-allocated outputs and caller buffers), and a fixture run when
// a model path is given:  raii [MODEL CASE_DIR REF_SUBDIR]
// Last line: "raii: N passed, N failed".
#include "graft.hpp"

#include <cmath>
#include <cstdio>
#include <type_traits>

#include "models.h"
#include "npy.h"

static int passed, failed;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) passed++;                                                      \
        else { failed++; std::printf("FAIL line %d: %s\n", __LINE__, #cond); }   \
    } while (0)

static_assert(!std::is_copy_constructible_v<graft::Model>, "Model is move-only");
static_assert(!std::is_copy_assignable_v<graft::Session>, "Session is move-only");
static_assert(std::is_nothrow_move_constructible_v<graft::Model>, "Model moves");
static_assert(std::is_nothrow_move_constructible_v<graft::Session>, "Session moves");

int main(int argc, char **argv) {
    CHECK(graft::abi_version() == GRAFT_ABI_VERSION);
    CHECK(graft::version() == GRAFT_VERSION_STRING);

    // Errors carry status and message.
    try {
        graft::Model m("/nonexistent.onnx");
        CHECK(false);
    } catch (const graft::Error &e) {
        CHECK(e.status() == GRAFT_STATUS_IO);
        CHECK(std::string(e.what()).find("/nonexistent.onnx") != std::string::npos);
    }
    try {
        graft::Model::from_memory(unsupported_onnx, sizeof unsupported_onnx);
        CHECK(false);
    } catch (const graft::Error &e) {
        CHECK(e.status() == GRAFT_STATUS_UNSUPPORTED);
    }

    graft::Model model = graft::Model::from_memory(passthrough_onnx, sizeof passthrough_onnx);
    auto inputs = model.inputs();
    CHECK(inputs.size() == 2 && inputs[0].name == "x" && inputs[0].dtype == GRAFT_DTYPE_FLOAT32);
    CHECK(inputs[0].dims && inputs[0].dims->size() == 2 && (*inputs[0].dims)[0].symbol == std::string("batch") &&
          (*inputs[0].dims)[1].size == 4);
    CHECK(model.outputs().size() == 2);

    // Moves: the moved-from handle is empty and destructs harmlessly.
    graft::Model moved = std::move(model);
    CHECK(model.get() == nullptr && moved.get() != nullptr);
    graft::Session session(moved, 2);
    graft::Session other = std::move(session);
    CHECK(session.get() == nullptr && other.get() != nullptr);

    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t ids[3] = {4, 5, 6};
    auto out = other.run({graft::TensorView::of("x", x, {2, 4}), graft::TensorView::of("ids", ids, {3})});
    CHECK(out.size() == 2);
    CHECK(out.at("x").shape() == std::vector<int64_t>({2, 4}) && out.at("x").data<float>()[7] == 8.0f);
    CHECK(out.at("ids").data<int64_t>()[2] == 6);
    try {
        out.at("x").data<int64_t>();
        CHECK(false);
    } catch (const graft::Error &e) {
        CHECK(e.status() == GRAFT_STATUS_INVALID_ARGUMENT);
    }
    try {
        other.run({graft::TensorView::of("x", x, {2, 4})});
        CHECK(false);
    } catch (const graft::Error &e) {
        CHECK(e.status() == GRAFT_STATUS_INVALID_ARGUMENT &&
              std::string(e.what()).find("'ids' is missing") != std::string::npos);
    }
    int64_t y_ids[3] = {0, 0, 0};
    int64_t ids_shape[1] = {3};
    std::vector<graft_tensor> into = {{sizeof(graft_tensor), GRAFT_DTYPE_INT64, "ids", 1, ids_shape, y_ids, sizeof y_ids}};
    other.run_into({graft::TensorView::of("x", x, {2, 4}), graft::TensorView::of("ids", ids, {3})}, into);
    CHECK(y_ids[0] == 4 && y_ids[2] == 6);

    // Fixture model against its reference.
    if (argc == 4) {
        try {
            graft::Model fm(argv[1]);
            graft::Session fs(fm, 2);
            std::vector<npy_array> arrays;
            std::vector<graft::TensorView> views;
            for (const auto &in : fm.inputs()) {
                npy_array a;
                std::string p = std::string(argv[2]) + "/inputs/" + in.name + ".npy";
                CHECK(npy_read(p.c_str(), &a) == 0);
                arrays.push_back(a);
                views.push_back(graft::TensorView{in.name, a.dtype, std::vector<int64_t>(a.shape, a.shape + a.rank),
                                                  a.data, a.byte_size});
            }
            auto results = fs.run(views);
            for (const auto &o : fm.outputs()) {
                npy_array e;
                std::string p = std::string(argv[2]) + "/" + argv[3] + "/" + o.name + ".npy";
                CHECK(npy_read(p.c_str(), &e) == 0);
                const graft::Tensor &t = results.at(o.name);
                double diff = 0;
                bool same = t.byte_size() == e.byte_size;
                for (size_t j = 0; same && j < t.count(); j++)
                    diff = std::fmax(diff, std::fabs(double(t.data<float>()[j]) - double(static_cast<float *>(e.data)[j])));
                std::printf("  %s: max_abs_diff=%g\n", o.name.c_str(), diff);
                CHECK(same && diff <= 1e-4);
                npy_free(&e);
            }
            // Adapters: a PEFT LoRA bound with a scale, then per row (row 0 the adapter, row 1
            // the base model), against the PyTorch + PEFT references of each row.
            std::string model_dir(argv[1]);
            std::string root = model_dir.substr(0, model_dir.rfind('/'));
            root = root.substr(0, root.rfind('/'));
            graft::Adapter lora(fm, root + "/adapters/bert/lora_qv_r8");
            CHECK(lora.name() == "lora_qv_r8");
            npy_array with, without;
            CHECK(npy_read((root + "/adapters/bert/refs/lora_qv_r8/last_hidden_state.npy").c_str(), &with) == 0);
            CHECK(npy_read((root + "/adapters/bert/refs/base/last_hidden_state.npy").c_str(), &without) == 0);
            auto max_diff = [](const graft::Tensor &t, const npy_array &e, size_t begin, size_t end) {
                double d = 0;
                for (size_t j = begin; j < end; j++)
                    d = std::fmax(d, std::fabs(double(t.data<float>()[j]) - double(static_cast<float *>(e.data)[j])));
                return d;
            };
            fs.set_adapters({{&lora, 1.0f}});
            auto adapted = fs.run(views);
            const graft::Tensor &h = adapted.at("last_hidden_state");
            CHECK(h.byte_size() == with.byte_size && max_diff(h, with, 0, h.count()) <= 1e-4);
            fs.set_adapters({});
            auto rows = fs.run(views, {&lora, nullptr});
            const graft::Tensor &r = rows.at("last_hidden_state");
            size_t half = r.count() / 2;
            CHECK(max_diff(r, with, 0, half) <= 1e-4 && max_diff(r, without, half, r.count()) <= 1e-4);
            graft::Adapter moved(std::move(lora));
            CHECK(lora.get() == nullptr && moved.name() == "lora_qv_r8");
            CHECK(!moved.aux_input());
            npy_free(&with);
            npy_free(&without);

            // Routed experts (moe_topk2): forced expert 1 at every router, allow / deny masks with a
            // record, against make_routing_fixtures.py's PyTorch references (the fixture inputs
            // are bert_torchscript/basic's, the ones run here).
            graft::Adapter moe(fm, root + "/adapters/bert/moe_topk2");
            CHECK(moe.router("layer.0.attention.self.value") == 1);
            fs.set_adapters({{&moe, 1.0f}});
            graft::Routing forced;
            for (size_t r = 0; r < 4; r++) forced.force(moe, r, {1});
            npy_array force_ref, allow_ref;
            CHECK(npy_read((root + "/moe_control/force_e1/last_hidden_state.npy").c_str(), &force_ref) == 0);
            CHECK(npy_read((root + "/moe_control/allow_03_deny2/last_hidden_state.npy").c_str(), &allow_ref) == 0);
            auto f = fs.run(views, forced);
            CHECK(max_diff(f.at("last_hidden_state"), force_ref, 0, f.at("last_hidden_state").count()) <= 1e-4);
            graft::Routing masked;
            masked.allow(moe, 0, {0, 3}).deny(moe, 3, {2}).record();
            CHECK(masked.decisions().empty());
            auto m = fs.run(views, masked);
            CHECK(max_diff(m.at("last_hidden_state"), allow_ref, 0, m.at("last_hidden_state").count()) <= 1e-4);
            auto decisions = masked.decisions();
            CHECK(decisions.size() == 4 && decisions[0].adapter == "moe_topk2" && decisions[0].experts == 4);
            bool only_allowed = !decisions.empty() && decisions[0].tokens > 0;
            for (size_t t = 0; only_allowed && t < decisions[0].tokens; t++)
                only_allowed = decisions[0].weights[t * 4 + 1] == 0 && decisions[0].weights[t * 4 + 2] == 0;
            CHECK(only_allowed);
            try {
                forced.force(moe, 0, {7});
                CHECK(false);
            } catch (const graft::Error &e) {
                CHECK(e.status() == GRAFT_STATUS_INVALID_ARGUMENT && std::string(e.what()).find("out of range") != std::string::npos);
            }
            try {
                forced.allow(moe, 0, {2});   // force and allow on one router
                CHECK(false);
            } catch (const graft::Error &e) {
                CHECK(e.status() == GRAFT_STATUS_INVALID_ARGUMENT && std::string(e.what()).find("cannot be combined") != std::string::npos);
            }
            fs.set_adapters({});
            npy_free(&force_ref);
            npy_free(&allow_ref);

            // VLoRA: image features as an auxiliary input, and a request adapter, on the llama.
            graft::Model llama(root + "/llama_torchscript/model.onnx");
            graft::Adapter vlora(llama, root + "/vlora/llama_qv_r4");
            CHECK(vlora.aux_input() == std::string("image_features"));
            npy_array img, ref, li[3];
            CHECK(npy_read((root + "/vlora/refs/features/img0.npy").c_str(), &img) == 0);
            CHECK(npy_read((root + "/vlora/refs/single/logits.npy").c_str(), &ref) == 0);
            const char *llama_inputs[3] = {"input_ids", "attention_mask", "position_ids"};
            std::vector<graft::TensorView> lv;
            for (int i = 0; i < 3; i++) {
                CHECK(npy_read((root + "/llama_torchscript/basic/inputs/" + llama_inputs[i] + ".npy").c_str(), &li[i]) == 0);
                lv.push_back(graft::TensorView::of(llama_inputs[i], static_cast<const int64_t *>(li[i].data),
                                                   std::vector<int64_t>(li[i].shape, li[i].shape + li[i].rank)));
            }
            std::vector<graft::TensorView> aux = {graft::TensorView::of(
                "image_features", static_cast<const float *>(img.data), std::vector<int64_t>(img.shape, img.shape + img.rank))};
            graft::Session ls(llama);
            ls.set_adapters({{&vlora, 1.0f}});
            auto out = ls.run_aux(lv, aux, GRAFT_MERGE_MERGED);
            const graft::Tensor &logits = out.at("logits");
            CHECK(logits.byte_size() == ref.byte_size && max_diff(logits, ref, 0, logits.count()) <= 1e-4);
            graft::Adapter request = vlora.generate(aux);
            CHECK(!request.aux_input());
            ls.set_adapters({{&request, 1.0f}});
            auto again = ls.run(lv);
            CHECK(max_diff(again.at("logits"), ref, 0, logits.count()) <= 1e-4);
            ls.set_adapters({{&vlora, 1.0f}});
            try {
                ls.run(lv);   // no features
                CHECK(false);
            } catch (const graft::Error &e) {
                CHECK(e.status() == GRAFT_STATUS_INVALID_ARGUMENT &&
                      std::string(e.what()).find("image_features") != std::string::npos);
            }
            npy_free(&img);
            npy_free(&ref);
            for (auto &a : li) npy_free(&a);
            for (auto &a : arrays) npy_free(&a);
        } catch (const graft::Error &e) {
            std::printf("fixture: %s\n", e.what());
            CHECK(false);
        }
    }

    std::printf("raii: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
