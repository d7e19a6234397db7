// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Graft",
    products: [
        .library(name: "Graft", targets: ["Graft"]),
        .executable(name: "graft", targets: ["GraftCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C++ over libonnx_proto + libprotobuf, exposed to Swift through an extern "C" facade only
        // (Swift's C++ interop on the ONNX headers crashes the 6.3 frontend).
        .target(
            name: "COnnx",
            cxxSettings: [.define("ONNX_ML", to: "1"), .define("ONNX_NAMESPACE", to: "onnx")],
            linkerSettings: [.linkedLibrary("onnx_proto"), .linkedLibrary("protobuf")]
        ),
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(name: "GraftCore", dependencies: ["COnnx", "COpenBLAS"]),
        .target(name: "Graft", dependencies: ["GraftCore"]),
        .executableTarget(
            name: "GraftCLI",
            dependencies: ["Graft", "GraftCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "GraftCoreTests", dependencies: ["GraftCore"]),
        .testTarget(name: "GraftTests", dependencies: ["Graft"]),
    ],
    cxxLanguageStandard: .cxx17
)
