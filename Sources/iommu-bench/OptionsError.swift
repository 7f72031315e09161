/// A command line `Options.parse` refused; an empty message asks for the usage only.
struct OptionsError: Error {
    var message: String
}
