import Testing
@testable import GraftCore

