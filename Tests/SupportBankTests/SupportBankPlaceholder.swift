import XCTest
@testable import SupportBank

final class SupportBankModuleTests: XCTestCase {}
