// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Graft",
    products: [
        .library(name: "Graft", targets: ["Graft"]),
        .executable(name: "graft", targets: ["GraftCLI"]),
        // The C ABI of include/graft.h as libGraftC.so (installed as libgraft.so by scripts/install.sh;
        // the product cannot be named "graft": the CLI executable product has that name).
        .library(name: "GraftC", type: .dynamic, targets: ["GraftC"]),
        // Adapter plugins: each a shared object built on include/graft_plugin.h alone (never GraftCore).
        .library(name: "GraftPluginLoRA", type: .dynamic, targets: ["GraftPluginLoRA"]),
        .library(name: "GraftPluginMoELoRA", type: .dynamic, targets: ["GraftPluginMoELoRA"]),
        .library(name: "GraftPluginVLoRA", type: .dynamic, targets: ["GraftPluginVLoRA"]),
        .library(name: "GraftPluginModalityGate", type: .dynamic, targets: ["GraftPluginModalityGate"]),
        .library(name: "GraftPluginIA3", type: .dynamic, targets: ["GraftPluginIA3"]),
        .library(name: "GraftPluginMinimal", type: .dynamic, targets: ["GraftPluginMinimal"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // include/graft_plugin.h (canonical, symlinked) for the plugin host and Swift plugins.
        .target(name: "CGraftPlugin"),
        .target(name: "CMath", exclude: ["fit_coefficients.py"]), // vectorised exp/erf (AVX2+FMA, run-time dispatch)
        // Packed-weight GEMM micro-kernels (AVX-512 / AVX2+FMA / portable, chosen at run time).
        .target(name: "CKernels"),
        .target(name: "GraftCore", dependencies: ["COpenBLAS", "CGraftPlugin", "CMath", "CKernels"]),
        .target(name: "Graft", dependencies: ["GraftCore"]),
        // include/graft.h (canonical, symlinked into CGraft/include) and per-thread error storage.
        .target(name: "CGraft"),
        .target(
            name: "GraftC",
            dependencies: ["CGraft", "GraftCore"],
            exclude: ["exports.map"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/GraftC/exports.map"])]
        ),
        .executableTarget(
            name: "GraftCLI",
            dependencies: ["Graft", "GraftCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Adapter plugins (docs/PLUGINS.md). Each exports graft_plugin_entry only.
        // What the Swift plugins share (JSON, the typed host wrapper), linked into each statically.
        .target(name: "GraftPluginSupport", dependencies: ["CGraftPlugin"], path: "Plugins/Support"),
        .target(
            name: "GraftPluginLoRA",
            dependencies: ["CGraftPlugin", "GraftPluginSupport"],
            path: "Plugins/LoRA",
            exclude: ["exports.map"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Plugins/LoRA/exports.map"])]
        ),
        .target(
            name: "GraftPluginMoELoRA",
            dependencies: ["CGraftPlugin", "GraftPluginSupport"],
            path: "Plugins/MoELoRA",
            exclude: ["exports.map"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Plugins/MoELoRA/exports.map"])]
        ),
        .target(
            name: "GraftPluginVLoRA",
            dependencies: ["CGraftPlugin", "GraftPluginSupport"],
            path: "Plugins/VLoRA",
            exclude: ["exports.map"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Plugins/VLoRA/exports.map"])]
        ),
        .target(
            name: "GraftPluginModalityGate",
            dependencies: ["CGraftPlugin", "GraftPluginSupport"],
            path: "Plugins/ModalityGate",
            exclude: ["exports.map"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Plugins/ModalityGate/exports.map"])]
        ),
        .target(
            name: "GraftPluginIA3",
            path: "Plugins/examples/ia3",
            exclude: ["exports.map"],
            cSettings: [.unsafeFlags(["-std=c99", "-fvisibility=hidden", "-Wall", "-Wextra"])],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Plugins/examples/ia3/exports.map"])]
        ),
        .target(
            name: "GraftPluginMinimal",
            path: "Plugins/examples/minimal",
            exclude: ["exports.map"],
            cSettings: [.unsafeFlags(["-std=c99", "-fvisibility=hidden", "-Wall", "-Wextra"])],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Plugins/examples/minimal/exports.map"])]
        ),
        .testTarget(name: "GraftPluginTests", dependencies: ["CGraftPlugin"]),
        .testTarget(name: "GraftCoreTests", dependencies: ["GraftCore"]),
        .testTarget(name: "GraftTests", dependencies: ["Graft"]),
    ],
    cxxLanguageStandard: .cxx17
)
