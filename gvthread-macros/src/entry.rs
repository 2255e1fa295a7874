//! Parsing, checking and expansion shared by `#[gvthread::main]` and `#[gvthread::test]`.
//!
//! # Pipeline
//!
//! 1. The item must parse as a function; anything else is reported and emitted unchanged.
//! 2. The signature is checked (no parameters, no generics, not `const` or `unsafe`, and for
//!    tests no second test attribute).
//! 3. The options are parsed one by one. A bad option is reported and then ignored, so the
//!    remaining ones still apply.
//! 4. The function is rewritten to build a `Runtime` and run its body with `Runtime::block_on`.
//!
//! Errors from steps 2 and 3 are collected, not returned early, so one compile shows all of them.
//! As soon as the item is a function the rewritten function is emitted even when there are
//! errors: left unexpanded, an `async fn main` or a test without its `#[test]` would add
//! misleading follow-up errors and would break IDE features on the body.
//!
//! # Generated code
//!
//! The generated code names only `::core`, `::std` and the gvthread crate (`::gvthread`, or the
//! `crate = "..."` path), so it compiles for a user whose only dependency is `gvthread`; in
//! particular an `async` body is driven by `gvthread::__private::block_on_future`, not by
//! `gvthread-futures`.
//!
//! The locals of the expansion are spanned with [`Span::mixed_site`], so the user's body cannot
//! see them, and carry a `__gvthread_` prefix, because a `let` may not shadow a user's `static`
//! of the same name even across hygiene. Code built from an option is spanned at that option's
//! value, and the paths into the crate at the `crate = "..."` value, so a problem with them is
//! reported there; the rest keeps the call-site span, which is the attribute itself.
//!
//! The body is wrapped in a `move` closure whose return type is the function's own return type,
//! so `return` and `?` in the body behave as they did in the original function and the error
//! type of a `?` is inferred from the signature. For an `async` body, the future is additionally
//! coerced to `Pin<&mut dyn Future<Output = T>>`, which fixes the output type of the `async`
//! block before `?` needs it. Neither annotation is written when the return type contains
//! `impl Trait` or is `!`, since closures cannot name those.
//!
//! `Runtime::block_on` requires the body's value to be `Send`. `main` and tests returning
//! something other than `()` therefore report their value inside the GVThread and return the
//! `ExitCode` instead; see [`reports_in_gvthread`].

use proc_macro2::{Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Item, ItemFn, Lit, LitBool, Meta, Path, ReturnType, Token, Type, UnOp};

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `#[gvthread::main]`
    Main,
    /// `#[gvthread::test]`
    Test,
}

impl Kind {
    /// The attribute as the user writes it, for messages.
    fn attribute(self) -> &'static str {
        match self {
            Kind::Main => "`#[gvthread::main]`",
            Kind::Test => "`#[gvthread::test]`",
        }
    }
}

/// Expands `#[gvthread::main(args)]` or `#[gvthread::test(args)]` applied to `item`.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let function = match parse_function(kind, item.clone()) {
        Ok(function) => function,
        Err(error) => return with_error(item, error),
    };

    let mut errors = Errors::default();
    check_signature(kind, &function, &mut errors);
    let options = Options::parse(args, &mut errors);
    let expanded = generate(kind, function, &options);

    match errors.finish() {
        None => expanded,
        Some(error) => with_error(expanded, error),
    }
}

/// Appends `error` to `tokens` as `compile_error!` invocations.
fn with_error(mut tokens: TokenStream, error: syn::Error) -> TokenStream {
    tokens.extend(error.into_compile_error());
    tokens
}

/// Collects every error of one expansion so they are all reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> Option<syn::Error> {
        self.0
    }
}

// ---------------------------------------------------------------------------------------------
// The item
// ---------------------------------------------------------------------------------------------

/// Parses `item` as a function, or explains what it is instead.
fn parse_function(kind: Kind, item: TokenStream) -> syn::Result<ItemFn> {
    let not_a_function = |tokens: &dyn ToTokens, what: &str| {
        syn::Error::new_spanned(
            tokens,
            format!("{} can only be applied to a function, not to {what}", kind.attribute()),
        )
    };
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(_) => return Err(not_a_function(&item, "this item")),
    };
    let (head, what): (TokenStream, &str) = match parsed {
        Item::Fn(function) => return Ok(function),
        Item::Struct(i) => (keyword_and_name(i.struct_token, &i.ident), "a struct"),
        Item::Enum(i) => (keyword_and_name(i.enum_token, &i.ident), "an enum"),
        Item::Union(i) => (keyword_and_name(i.union_token, &i.ident), "a union"),
        Item::Trait(i) => (keyword_and_name(i.trait_token, &i.ident), "a trait"),
        Item::Mod(i) => (keyword_and_name(i.mod_token, &i.ident), "a module"),
        Item::Const(i) => (keyword_and_name(i.const_token, &i.ident), "a constant"),
        Item::Static(i) => (keyword_and_name(i.static_token, &i.ident), "a static"),
        Item::Type(i) => (keyword_and_name(i.type_token, &i.ident), "a type alias"),
        Item::Impl(i) => (i.impl_token.to_token_stream(), "an impl block"),
        Item::Use(i) => (i.to_token_stream(), "a `use` declaration"),
        Item::ExternCrate(i) => (i.to_token_stream(), "an `extern crate` declaration"),
        Item::ForeignMod(i) => (i.abi.to_token_stream(), "an `extern` block"),
        Item::Macro(i) => (i.mac.path.to_token_stream(), "a macro invocation"),
        other => (other.to_token_stream(), "this item"),
    };
    Err(not_a_function(&head, what))
}

fn keyword_and_name(keyword: impl ToTokens, name: &Ident) -> TokenStream {
    quote!(#keyword #name)
}

/// Reports everything about the signature that the expansion cannot support.
fn check_signature(kind: Kind, function: &ItemFn, errors: &mut Errors) {
    let sig = &function.sig;
    let attribute = kind.attribute();

    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            format!("{attribute} functions cannot be `const`: they start a runtime when called"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            format!(
                "{attribute} functions cannot be `unsafe`; \
                 put the unsafe operations in an `unsafe` block inside the body instead"
            ),
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("{attribute} functions cannot be generic; remove the generic parameters"),
        ));
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            format!("{attribute} functions cannot have a `where` clause; remove it"),
        ));
    }
    if !sig.inputs.is_empty() || sig.variadic.is_some() {
        let message = match kind {
            Kind::Main if sig.ident == "main" => "the `main` function cannot take arguments; \
                 read command-line arguments with `std::env::args()` instead"
                .to_owned(),
            Kind::Main => format!(
                "{attribute} functions cannot take arguments: \
                 the runtime calls the body with none; remove the parameters"
            ),
            Kind::Test => "test functions cannot take arguments; remove the parameters".to_owned(),
        };
        let span_tokens = match &sig.variadic {
            Some(variadic) if sig.inputs.is_empty() => variadic.to_token_stream(),
            _ => sig.inputs.to_token_stream(),
        };
        errors.push(syn::Error::new_spanned(span_tokens, message));
    }
    if kind == Kind::Test {
        for attr in &function.attrs {
            if is_test_attribute(attr.path()) {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "`#[gvthread::test]` already makes this function a test; \
                     remove this second test attribute",
                ));
            }
        }
    }
}

/// Whether `path` names `#[test]` or another crate's test attribute (`#[tokio::test]`, ...).
fn is_test_attribute(path: &Path) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [only] => only == "test",
        [first, .., last] => last == "test" && ["core", "std", "gvthread", "tokio"].contains(&first.as_str()),
        [] => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The options
// ---------------------------------------------------------------------------------------------

/// One option the attributes accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Knob {
    Workers,
    LowPriorityWorkers,
    MaxGvthreads,
    TimeSliceMs,
    ForcedPreempt,
    Crate,
}

impl Knob {
    const ALL: [Knob; 6] = [
        Knob::Workers,
        Knob::LowPriorityWorkers,
        Knob::MaxGvthreads,
        Knob::TimeSliceMs,
        Knob::ForcedPreempt,
        Knob::Crate,
    ];

    fn name(self) -> &'static str {
        match self {
            Knob::Workers => "workers",
            Knob::LowPriorityWorkers => "low_priority_workers",
            Knob::MaxGvthreads => "max_gvthreads",
            Knob::TimeSliceMs => "time_slice_ms",
            Knob::ForcedPreempt => "forced_preempt",
            Knob::Crate => "crate",
        }
    }

    /// A correct use, quoted in messages.
    fn example(self) -> &'static str {
        match self {
            Knob::Workers => "`workers = 4`",
            Knob::LowPriorityWorkers => "`low_priority_workers = 1`",
            Knob::MaxGvthreads => "`max_gvthreads = 10_000`",
            Knob::TimeSliceMs => "`time_slice_ms = 10`",
            Knob::ForcedPreempt => "`forced_preempt = false`",
            Knob::Crate => "`crate = \"gvthread\"`",
        }
    }

    /// The smallest value accepted by an integer option, and why.
    fn minimum(self) -> Option<(u64, &'static str)> {
        match self {
            Knob::Workers => Some((1, "the body needs a worker thread to run on")),
            Knob::MaxGvthreads => Some((1, "the body itself runs as a GVThread")),
            Knob::TimeSliceMs => Some((1, "to turn off forced preemption use `forced_preempt = false` instead")),
            Knob::LowPriorityWorkers | Knob::ForcedPreempt | Knob::Crate => None,
        }
    }

    fn from_name(name: &str) -> Option<Knob> {
        Knob::ALL.into_iter().find(|knob| knob.name() == name)
    }

    /// The option a user most likely meant by an unknown `name`: spellings of the matching
    /// `SchedulerConfig` method, tokio's names, and other near misses.
    fn suggestion(name: &str) -> Option<Knob> {
        let name = name.to_ascii_lowercase().replace('-', "_");
        if let Some(knob) = Knob::from_name(&name) {
            return Some(knob);
        }
        match name.as_str() {
            "worker_threads" | "num_workers" | "worker" | "threads" | "num_threads" => Some(Knob::Workers),
            "num_low_priority_workers" | "low_priority_worker" | "low_workers" => Some(Knob::LowPriorityWorkers),
            "max_gvthread" | "max_threads" | "max_green_threads" | "gvthreads" => Some(Knob::MaxGvthreads),
            "time_slice" | "timeslice" | "timeslice_ms" | "time_slice_millis" => Some(Knob::TimeSliceMs),
            "enable_forced_preempt" | "forced_preemption" | "preempt" | "preemption" => Some(Knob::ForcedPreempt),
            "crate_path" | "krate" => Some(Knob::Crate),
            _ => None,
        }
    }
}

/// The options of one attribute, each with the span of the value that set it.
#[derive(Default)]
struct Options {
    workers: Option<(usize, Span)>,
    low_priority_workers: Option<(usize, Span)>,
    max_gvthreads: Option<(usize, Span)>,
    time_slice_ms: Option<(u64, Span)>,
    forced_preempt: Option<(bool, Span)>,
    krate: Option<Path>,
}

impl Options {
    /// Parses the attribute's arguments, pushing a message for each bad option and skipping it.
    fn parse(args: TokenStream, errors: &mut Errors) -> Options {
        let mut options = Options::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
            Ok(metas) => metas,
            Err(error) => {
                errors.push(error);
                return options;
            }
        };
        let mut seen = Vec::new();
        for meta in &metas {
            if let Err(error) = options.apply(meta, &mut seen) {
                errors.push(error);
            }
        }
        options
    }

    fn apply(&mut self, meta: &Meta, seen: &mut Vec<Knob>) -> syn::Result<()> {
        let knob = knob_of(meta.path())?;
        if seen.contains(&knob) {
            return Err(syn::Error::new_spanned(
                meta,
                format!("duplicate option `{}`: each option may be given only once; remove one of them", knob.name()),
            ));
        }
        seen.push(knob);

        let value = match meta {
            Meta::NameValue(name_value) => ungroup(&name_value.value),
            Meta::Path(path) => {
                return Err(syn::Error::new_spanned(
                    path,
                    format!("option `{}` needs a value, e.g. {}", knob.name(), knob.example()),
                ));
            }
            Meta::List(list) => {
                return Err(syn::Error::new_spanned(
                    list,
                    format!("options are written `name = value`, e.g. {}", knob.example()),
                ));
            }
        };
        let span = value_span(value);
        match knob {
            Knob::Workers => self.workers = Some((count_value(knob, value)?, span)),
            Knob::LowPriorityWorkers => {
                self.low_priority_workers = Some((count_value(knob, value)?, span));
            }
            Knob::MaxGvthreads => self.max_gvthreads = Some((count_value(knob, value)?, span)),
            Knob::TimeSliceMs => self.time_slice_ms = Some((int_value(knob, value)?, span)),
            Knob::ForcedPreempt => self.forced_preempt = Some((bool_value(knob, value)?, span)),
            Knob::Crate => self.krate = Some(crate_value(value)?),
        }
        Ok(())
    }

    /// The path through which the generated code reaches the gvthread crate.
    fn crate_path(&self) -> CratePath {
        match &self.krate {
            Some(path) => CratePath { span: path.span(), path: path.to_token_stream() },
            None => CratePath { span: Span::call_site(), path: quote!(::gvthread) },
        }
    }

    /// `SchedulerConfig::default()` followed by one builder call per option given.
    fn scheduler_config(&self, krate: &CratePath) -> TokenStream {
        let config_type = krate.item("SchedulerConfig");
        let mut config = quote!(#config_type::default());
        let counts = [
            (self.workers, "num_workers"),
            (self.low_priority_workers, "num_low_priority_workers"),
            (self.max_gvthreads, "max_gvthreads"),
        ];
        for (value, method) in counts {
            if let Some((n, span)) = value {
                let method = Ident::new(method, span);
                let mut n = Literal::usize_suffixed(n);
                n.set_span(span);
                config.extend(quote_spanned!(span=> .#method(#n)));
            }
        }
        if let Some((ms, span)) = self.time_slice_ms {
            let mut ms = Literal::u64_suffixed(ms);
            ms.set_span(span);
            config.extend(quote_spanned!(span=> .time_slice(::std::time::Duration::from_millis(#ms))));
        }
        if let Some((on, span)) = self.forced_preempt {
            let on = LitBool::new(on, span);
            config.extend(quote_spanned!(span=> .enable_forced_preempt(#on)));
        }
        config
    }
}

/// The path to the gvthread crate, and the span to report a wrong `crate = "..."` path at.
struct CratePath {
    path: TokenStream,
    span: Span,
}

impl CratePath {
    /// `<crate>::<item>`. Every token after the crate path is spanned at the `crate = "..."`
    /// value, so that a path that does not lead to gvthread is reported at that value.
    fn item(&self, item: &str) -> TokenStream {
        let path = &self.path;
        let segments = item.split("::").map(|name| Ident::new(name, self.span));
        quote_spanned!(self.span=> #path #(::#segments)*)
    }
}

/// Resolves an option name, or explains which names exist.
fn knob_of(path: &Path) -> syn::Result<Knob> {
    if let Some(knob) = path.get_ident().and_then(|i| Knob::from_name(&i.to_string())) {
        return Ok(knob);
    }
    let written = path.to_token_stream().to_string().replace(' ', "");
    let expected: Vec<&str> = Knob::ALL.iter().map(|knob| knob.name()).collect();
    let mut message = format!("unknown option `{written}`; expected one of: {}", expected.join(", "));
    if let Some(knob) = Knob::suggestion(&written) {
        message.push_str(&format!(" (did you mean `{}`?)", knob.name()));
    }
    Err(syn::Error::new_spanned(path, message))
}

/// Looks through the invisible groups that `macro_rules!` puts around `$value:expr`.
fn ungroup(mut expr: &Expr) -> &Expr {
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    expr
}

fn value_span(value: &Expr) -> Span {
    value.to_token_stream().into_iter().next().map_or_else(Span::call_site, |token| token.span())
}

/// Names the kind of a value that was not the one expected.
fn describe(value: &Expr) -> &'static str {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(_) => "a string literal",
            Lit::ByteStr(_) => "a byte string literal",
            Lit::CStr(_) => "a C string literal",
            Lit::Byte(_) => "a byte literal",
            Lit::Char(_) => "a character literal",
            Lit::Int(_) => "an integer literal",
            Lit::Float(_) => "a floating-point literal",
            Lit::Bool(_) => "a boolean literal",
            _ => "an unsupported literal",
        },
        Expr::Path(_) => "a path; options take literal values, not constants",
        _ => "an expression; options take literal values only",
    }
}

/// A non-negative integer literal, at least the option's minimum.
fn int_value(knob: Knob, value: &Expr) -> syn::Result<u64> {
    let negative = |value: &Expr| {
        syn::Error::new_spanned(
            value,
            format!("`{}` cannot be negative; use a value such as {}", knob.name(), knob.example()),
        )
    };
    let lit = match value {
        // syn folds `-1` into one negative literal.
        Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) if lit.base10_digits().starts_with('-') => {
            return Err(negative(value));
        }
        Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) => lit,
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => return Err(negative(value)),
        other => {
            let mut message = format!(
                "`{}` expects an integer literal such as {}, found {}",
                knob.name(),
                knob.example(),
                describe(other)
            );
            if let Expr::Lit(ExprLit { lit: Lit::Str(text), .. }) = other
                && text.value().trim().parse::<u64>().is_ok()
            {
                message.push_str("; remove the quotes");
            }
            return Err(syn::Error::new_spanned(other, message));
        }
    };
    let n = lit
        .base10_parse::<u64>()
        .map_err(|error| syn::Error::new(lit.span(), format!("`{}` is out of range: {error}", knob.name())))?;
    if let Some((minimum, reason)) = knob.minimum()
        && n < minimum
    {
        return Err(syn::Error::new(lit.span(), format!("`{}` must be at least {minimum}: {reason}", knob.name())));
    }
    Ok(n)
}

/// An integer literal that fits a `usize` on the machine running the compiler.
fn count_value(knob: Knob, value: &Expr) -> syn::Result<usize> {
    let n = int_value(knob, value)?;
    usize::try_from(n).map_err(|_| syn::Error::new_spanned(value, format!("`{}` is too large: {n}", knob.name())))
}

/// `true` or `false`.
fn bool_value(knob: Knob, value: &Expr) -> syn::Result<bool> {
    if let Expr::Lit(ExprLit { lit: Lit::Bool(lit), .. }) = value {
        return Ok(lit.value);
    }
    let mut message = format!("`{}` expects `true` or `false`, found {}", knob.name(), describe(value));
    if let Expr::Lit(ExprLit { lit: Lit::Str(text), .. }) = value
        && matches!(text.value().trim(), "true" | "false")
    {
        message.push_str("; remove the quotes");
    }
    Err(syn::Error::new_spanned(value, message))
}

/// A string literal holding a path, such as `"gvthread"` or `"my_framework::gvthread"`.
fn crate_value(value: &Expr) -> syn::Result<Path> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(text), .. }) => text.parse_with(Path::parse_mod_style).map_err(|_| {
            syn::Error::new(
                text.span(),
                format!(
                    "`crate` expects a path to the gvthread crate such as {}, \
                     but \"{}\" is not a path",
                    Knob::Crate.example(),
                    text.value()
                ),
            )
        }),
        Expr::Path(path) => {
            let written = path.to_token_stream().to_string().replace(' ', "");
            Err(syn::Error::new_spanned(
                value,
                format!("`crate` expects a string literal; write `crate = \"{written}\"`"),
            ))
        }
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "`crate` expects a string literal holding a path such as {}, found {}",
                Knob::Crate.example(),
                describe(other)
            ),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The expansion
// ---------------------------------------------------------------------------------------------

/// What the generated code can say about the function's return type.
enum Output<'a> {
    /// No return type, or `()`.
    Unit,
    /// A type that a closure's return type annotation can name.
    Named(&'a Type),
    /// A type containing `impl Trait`, which closures cannot name: left to inference.
    Opaque,
    /// `!`, which closures cannot name either.
    Never,
}

impl<'a> Output<'a> {
    fn of(output: &'a ReturnType) -> Output<'a> {
        match output {
            ReturnType::Default => Output::Unit,
            ReturnType::Type(_, ty) => match &**ty {
                Type::Tuple(tuple) if tuple.elems.is_empty() => Output::Unit,
                Type::Never(_) => Output::Never,
                ty if mentions_impl(ty.to_token_stream()) => Output::Opaque,
                ty => Output::Named(ty),
            },
        }
    }

    /// `-> T` for the closure that carries the body, when it helps and is allowed.
    fn closure_annotation(&self) -> Option<TokenStream> {
        match self {
            Output::Named(ty) => Some(quote!(-> #ty)),
            Output::Unit | Output::Opaque | Output::Never => None,
        }
    }

    /// The `Future::Output` an `async` body must have, when it can be named.
    fn future_output(&self) -> Option<TokenStream> {
        match self {
            Output::Unit => Some(quote!(())),
            Output::Named(ty) => Some(ty.to_token_stream()),
            Output::Opaque | Output::Never => None,
        }
    }
}

fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => mentions_impl(group.stream()),
        TokenTree::Punct(_) | TokenTree::Literal(_) => false,
    })
}

/// Whether the body's value is turned into an `ExitCode` inside the GVThread.
///
/// `Runtime::block_on` hands the body's value back to the calling thread, so that value must be
/// `Send`. The return values of `main` and of tests are only ever consumed through
/// `std::process::Termination::report`, and the most common of them,
/// `Result<(), Box<dyn Error>>`, is not `Send`. For those functions the expansion calls `report`
/// inside the GVThread, exactly as std would have called it on the returned value, and returns
/// the resulting `ExitCode`, which is `Send`. Printing `Error: ...` and the exit status are
/// unchanged. `()` needs no report (and a `#[should_panic]` test must keep returning `()`).
fn reports_in_gvthread(kind: Kind, function: &ItemFn, output: &Output<'_>) -> bool {
    let consumed_by_report = kind == Kind::Test || function.sig.ident == "main";
    consumed_by_report && matches!(output, Output::Named(_) | Output::Opaque)
}

/// Rewrites `function` so that its body runs via `Runtime::block_on`.
fn generate(kind: Kind, mut function: ItemFn, options: &Options) -> TokenStream {
    let krate = options.crate_path();
    let config = options.scheduler_config(&krate);
    let runtime_type = krate.item("Runtime");
    let block_on_future = krate.item("__private::block_on_future");
    let is_async = function.sig.asyncness.take().is_some();
    let output = Output::of(&function.sig.output);
    let closure_annotation = output.closure_annotation();
    let body = &function.block;

    // `__gvthread_` names: mixed-site hygiene keeps them out of the user's sight, and the prefix
    // keeps them from clashing with the user's statics, which `let` cannot shadow.
    let runtime = Ident::new("__gvthread_runtime", Span::mixed_site());
    let future = Ident::new("__gvthread_future", Span::mixed_site());
    let evaluate = Ident::new("__gvthread_body", Span::mixed_site());

    // A closure that runs the body and returns the function's declared return type.
    let run_body = if is_async {
        let drive = match output.future_output() {
            Some(output) => quote! {
                let #future = async move #body;
                let #future = ::core::pin::pin!(#future);
                let #future: ::core::pin::Pin<
                    &mut dyn ::core::future::Future<Output = #output>
                > = #future;
                #block_on_future(#future)
            },
            None => quote! {
                #block_on_future(async move #body)
            },
        };
        quote!(move || #closure_annotation { #drive })
    } else {
        quote!(move || #closure_annotation #body)
    };

    let gvthread_closure = if reports_in_gvthread(kind, &function, &output) {
        // The user's return type stays in the expansion, as the argument type of the function
        // that reports it (`impl Trait` is allowed there too): the names it uses (for example
        // an imported `Termination`) are used, so no unused-import warning appears.
        let report = Ident::new("__gvthread_report", Span::mixed_site());
        let mut declared = quote!(());
        if let ReturnType::Type(_, ty) = &mut function.sig.output {
            declared = ty.to_token_stream();
            let span = ty.span();
            **ty = syn::parse_quote_spanned!(span=> ::std::process::ExitCode);
        }
        quote! {
            move || {
                fn #report(value: #declared) -> ::std::process::ExitCode {
                    ::std::process::Termination::report(value)
                }
                let #evaluate = #run_body;
                #report(#evaluate())
            }
        }
    } else {
        run_body
    };

    // A `Send` problem with the returned value is best reported at the return type.
    let block_on = match &function.sig.output {
        ReturnType::Type(_, ty) => Ident::new("block_on", ty.span()),
        ReturnType::Default => Ident::new("block_on", Span::call_site()),
    };

    // Problems already reported by `check_signature` are repaired here rather than left for
    // rustc to report a second time: a `const fn` cannot start a runtime, and a second test
    // attribute would register the test twice.
    function.sig.constness = None;
    let test_attribute = match kind {
        Kind::Test => {
            function.attrs.retain(|attr| !is_test_attribute(attr.path()));
            Some(quote!(#[::core::prelude::v1::test]))
        }
        Kind::Main => None,
    };
    let attrs = &function.attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    quote! {
        #test_attribute
        #(#attrs)*
        #vis #sig {
            let mut #runtime = #runtime_type::new(#config);
            #runtime.#block_on(#gvthread_closure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option_errors(args: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        Options::parse(args, &mut errors);
        errors.finish().map(|error| error.into_iter().map(|e| e.to_string()).collect()).unwrap_or_default()
    }

    fn signature_errors(kind: Kind, item: TokenStream) -> Vec<String> {
        let function = parse_function(kind, item).expect("a function");
        let mut errors = Errors::default();
        check_signature(kind, &function, &mut errors);
        errors.finish().map(|error| error.into_iter().map(|e| e.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn all_options_parse() {
        let mut errors = Errors::default();
        let options = Options::parse(
            quote!(
                workers = 4,
                low_priority_workers = 0,
                max_gvthreads = 100_000,
                time_slice_ms = 5,
                forced_preempt = false,
                crate = "my::gvthread",
            ),
            &mut errors,
        );
        assert!(errors.finish().is_none());
        assert_eq!(options.workers.map(|o| o.0), Some(4));
        assert_eq!(options.low_priority_workers.map(|o| o.0), Some(0));
        assert_eq!(options.max_gvthreads.map(|o| o.0), Some(100_000));
        assert_eq!(options.time_slice_ms.map(|o| o.0), Some(5));
        assert_eq!(options.forced_preempt.map(|o| o.0), Some(false));
        assert_eq!(options.crate_path().path.to_string(), "my :: gvthread");
    }

    #[test]
    fn config_calls_only_the_given_builders() {
        let mut errors = Errors::default();
        let options = Options::parse(quote!(workers = 2, time_slice_ms = 7), &mut errors);
        let config = options.scheduler_config(&options.crate_path()).to_string();
        assert_eq!(
            config,
            ":: gvthread :: SchedulerConfig :: default () . num_workers (2usize) \
             . time_slice (:: std :: time :: Duration :: from_millis (7u64))"
        );
    }

    #[test]
    fn crate_keyword_paths_are_accepted() {
        for path in ["crate::rt", "self::gvthread", "super::gvthread", "::gvthread"] {
            let mut errors = Errors::default();
            let options = Options::parse(quote!(crate = #path), &mut errors);
            assert!(errors.finish().is_none(), "{path}");
            assert_eq!(options.crate_path().path.to_string().replace(' ', ""), path);
        }
    }

    #[test]
    fn unknown_option_lists_the_known_ones() {
        assert_eq!(
            option_errors(quote!(foo = 1)),
            ["unknown option `foo`; expected one of: workers, low_priority_workers, \
              max_gvthreads, time_slice_ms, forced_preempt, crate"]
        );
        let errors = option_errors(quote!(worker_threads = 4));
        assert!(errors[0].ends_with("(did you mean `workers`?)"), "{errors:?}");
    }

    #[test]
    fn wrong_values_are_explained() {
        assert_eq!(
            option_errors(quote!(workers = "4")),
            ["`workers` expects an integer literal such as `workers = 4`, \
              found a string literal; remove the quotes"]
        );
        assert_eq!(
            option_errors(quote!(forced_preempt = 1)),
            ["`forced_preempt` expects `true` or `false`, found an integer literal"]
        );
        assert_eq!(
            option_errors(quote!(workers = 0)),
            ["`workers` must be at least 1: the body needs a worker thread to run on"]
        );
        assert_eq!(
            option_errors(quote!(max_gvthreads = -1)),
            ["`max_gvthreads` cannot be negative; use a value such as `max_gvthreads = 10_000`"]
        );
        assert_eq!(
            option_errors(quote!(crate = gvthread)),
            ["`crate` expects a string literal; write `crate = \"gvthread\"`"]
        );
        assert_eq!(option_errors(quote!(workers)), ["option `workers` needs a value, e.g. `workers = 4`"]);
    }

    #[test]
    fn every_bad_option_is_reported() {
        let errors = option_errors(quote!(workers = 1, workers = 2, foo = 3, forced_preempt = "no"));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("duplicate option `workers`"));
        assert!(errors[1].starts_with("unknown option `foo`"));
        assert!(errors[2].starts_with("`forced_preempt` expects `true` or `false`"));
    }

    #[test]
    fn signature_problems_are_reported() {
        assert_eq!(
            signature_errors(
                Kind::Main,
                quote!(
                    fn main(x: i32) {}
                )
            ),
            ["the `main` function cannot take arguments; \
              read command-line arguments with `std::env::args()` instead"]
        );
        assert_eq!(
            signature_errors(
                Kind::Test,
                quote!(
                    #[test]
                    fn t() {}
                )
            ),
            ["`#[gvthread::test]` already makes this function a test; \
              remove this second test attribute"]
        );
        assert_eq!(
            signature_errors(
                Kind::Main,
                quote!(
                    const fn f<T>() {}
                )
            )
            .len(),
            2
        );
        assert!(
            signature_errors(
                Kind::Test,
                quote!(
                    async fn t() -> Result<(), ()> {
                        Ok(())
                    }
                )
            )
            .is_empty()
        );
    }

    #[test]
    fn non_functions_are_rejected_by_kind() {
        let Err(error) = parse_function(
            Kind::Main,
            quote!(
                struct Foo;
            ),
        ) else {
            panic!("a struct was accepted as a function");
        };
        assert_eq!(error.to_string(), "`#[gvthread::main]` can only be applied to a function, not to a struct");
    }

    #[test]
    fn errors_keep_the_item() {
        let expanded = expand(
            Kind::Main,
            quote!(bogus = 1),
            quote!(
                fn main() {}
            ),
        )
        .to_string();
        assert!(expanded.contains("fn main ()"), "{expanded}");
        assert!(expanded.contains("compile_error"), "{expanded}");
        let expanded = expand(
            Kind::Main,
            quote!(),
            quote!(
                struct S;
            ),
        )
        .to_string();
        assert!(expanded.starts_with("struct S ;"), "{expanded}");
        assert!(expanded.contains("compile_error"), "{expanded}");
    }

    #[test]
    fn async_bodies_use_only_the_gvthread_crate() {
        let expanded = expand(
            Kind::Test,
            quote!(),
            quote!(
                async fn t() -> Result<(), String> {
                    Ok(())
                }
            ),
        )
        .to_string();
        assert!(expanded.starts_with("# [:: core :: prelude :: v1 :: test]"), "{expanded}");
        assert!(expanded.contains(":: gvthread :: __private :: block_on_future"), "{expanded}");
        assert!(!expanded.contains("async fn"), "{expanded}");
        assert!(!expanded.contains("gvthread_futures"), "{expanded}");
    }

    #[test]
    fn impl_trait_outputs_are_not_annotated() {
        assert!(matches!(Output::of(&syn::parse_quote!(-> impl Sized)), Output::Opaque));
        assert!(matches!(Output::of(&syn::parse_quote!(-> Box<impl Sized>)), Output::Opaque));
        assert!(matches!(Output::of(&syn::parse_quote!(-> !)), Output::Never));
        assert!(matches!(Output::of(&syn::parse_quote!(-> ())), Output::Unit));
        assert!(matches!(Output::of(&syn::parse_quote!(-> Result<(), E>)), Output::Named(_)));
    }

    fn expanded_signature(kind: Kind, item: TokenStream) -> String {
        let expanded = expand(kind, quote!(), item).to_string();
        let end = expanded.find('{').expect("a body");
        expanded[..end].trim().to_owned()
    }

    #[test]
    fn main_and_tests_report_their_result_inside_the_gvthread() {
        assert_eq!(
            expanded_signature(
                Kind::Main,
                quote!(
                    fn main() -> Result<(), Box<dyn Error>> {
                        Ok(())
                    }
                )
            ),
            "fn main () -> :: std :: process :: ExitCode"
        );
        assert_eq!(
            expanded_signature(
                Kind::Test,
                quote!(
                    async fn t() -> Result<(), Box<dyn Error>> {
                        Ok(())
                    }
                )
            ),
            "# [:: core :: prelude :: v1 :: test] fn t () -> :: std :: process :: ExitCode"
        );
        // Unit returns are left alone, so `#[should_panic]` keeps working.
        assert_eq!(
            expanded_signature(
                Kind::Test,
                quote!(
                    #[should_panic]
                    fn t() {}
                )
            ),
            "# [:: core :: prelude :: v1 :: test] # [should_panic] fn t ()"
        );
        // Other functions hand their value back to the caller unchanged.
        assert_eq!(
            expanded_signature(
                Kind::Main,
                quote!(
                    async fn run() -> Result<u8, String> {
                        Ok(1)
                    }
                )
            ),
            "fn run () -> Result < u8 , String >"
        );
    }
}
