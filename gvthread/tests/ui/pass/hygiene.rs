// The expansion's locals neither see nor shadow names from the user's code.
#![allow(non_upper_case_globals)]

static runtime: &str = "the user's runtime";
static future: &str = "the user's future";
static body: &str = "the user's body";

#[gvthread::main]
async fn main() {
    assert_eq!(runtime, "the user's runtime");
    assert_eq!(future, "the user's future");
    assert_eq!(body, "the user's body");
}
