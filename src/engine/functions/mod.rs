//! Guards on the SQL functions whose results a client can make arbitrarily large.
//!
//! DataFusion's memory pool accounts for what operators hold (hash tables, sort buffers), not
//! for the arrays a scalar function builds: `repeat('x', 2147483647)` or `array_repeat(1,
//! 1000000000)` allocates gigabytes before anything can refuse it, and a failed allocation
//! aborts the whole process. Each guarded function estimates, from its arguments, what one call
//! (one batch) will build and refuses with ResourceExhausted past [`ValueLimits::max_bytes`];
//! functions that panic on out-of-range arguments check them first; `levenshtein` bounds its
//! quadratic work. The functions DataFusion only expects to be folded away at planning (`now()`,
//! `current_date`) answer from the clock when planning could not fold them.
//!
//! A guard wraps the original function and delegates everything else to it, so plans, names,
//! signatures and results are unchanged.

mod arguments;

use crate::human;

use std::any::Any;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::FieldRef;

use arguments::{
    backreferences, byte_lengths, check_overlay, clock, element_sizes, ints, list_element_width,
    nanos, range_elements, widens,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ExprSchema;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{exec_err, resources_datafusion_err};
use datafusion::error::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::optimizer::analyzer::AnalyzerRule;

/// What one call of a guarded function may build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueLimits {
    /// Bytes one call (one batch of rows) may produce.
    pub max_bytes: usize,
    /// Where the limit comes from, for the message.
    pub setting: &'static str,
}

/// Character-by-character comparisons `levenshtein` may make in one call (about a second).
const LEVENSHTEIN_MAX_CELLS: u128 = 200_000_000;

/// How a guarded function checks its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    /// `repeat(text, n)`: len(text) × n.
    Repeat,
    /// `lpad/rpad(text, n [, fill])`: n characters of up to 4 bytes.
    Pad,
    /// `array_repeat(element, n)`: n elements.
    ArrayRepeat,
    /// `array_resize(array, n [, value])`: n elements.
    ArrayResize,
    /// `range/generate_series(...)` as scalar functions: one list element per step.
    Range { inclusive: bool },
    /// `replace(text, from, to)`: every match of `from` becomes `to`.
    Replace,
    /// `regexp_replace(text, pattern, replacement [, flags])`.
    RegexpReplace,
    /// `overlay(text PLACING s FROM pos [FOR len])`: positions in range.
    Overlay,
    /// `levenshtein(a, b)`: len(a) × len(b) comparisons.
    Levenshtein,
    /// `now()`, `current_date`, `current_time`: answer from the clock if not folded away.
    Clock,
    /// `date_trunc(part, ts)`: DataFusion panics truncating timestamps at the edges of the
    /// nanosecond range (1677-09-21, 2262-04-11).
    DateTrunc,
    /// `round`/`trunc` of a decimal: DataFusion types the result by the scale argument only
    /// once it is a literal, so the type changes between type coercion and folding and the
    /// functions around disagree (`greatest` of two such results fails or loses digits). The
    /// guard types the result as its input, always; the rounded value is widened back to it.
    StableDecimal,
    /// `greatest`/`least`: a result in a narrower decimal than promised is widened back.
    Typed,
    /// `concat_ws('', a, b)` simplifies to `concat(a, b)`, which types string views as views
    /// where `concat_ws` promised `Utf8`: a `LIKE` coerced for the promise then fails to plan.
    /// Only the rewrite's type is kept (every guard does that).
    Rewritten,
}

/// The functions guarded, by name (aliases follow their function).
const GUARDED: &[(&str, Rule)] = &[
    ("repeat", Rule::Repeat),
    ("lpad", Rule::Pad),
    ("rpad", Rule::Pad),
    ("array_repeat", Rule::ArrayRepeat),
    ("array_resize", Rule::ArrayResize),
    ("range", Rule::Range { inclusive: false }),
    ("generate_series", Rule::Range { inclusive: true }),
    ("replace", Rule::Replace),
    ("regexp_replace", Rule::RegexpReplace),
    ("overlay", Rule::Overlay),
    ("levenshtein", Rule::Levenshtein),
    ("now", Rule::Clock),
    ("current_date", Rule::Clock),
    ("current_time", Rule::Clock),
    ("date_trunc", Rule::DateTrunc),
    ("round", Rule::StableDecimal),
    ("trunc", Rule::StableDecimal),
    ("greatest", Rule::Typed),
    ("least", Rule::Typed),
    ("concat_ws", Rule::Rewritten),
];

/// How close to the ends of the nanosecond timestamp range `date_trunc` may go (a year and a
/// bit: truncating to a year, quarter or week moves at most that far).
const DATE_TRUNC_MARGIN_NANOS: i128 = 400 * 86_400 * 1_000_000_000;

/// `state` with the guarded functions replaced by their guards, in its registry and — through
/// an analyzer rule that runs first — in every plan, including calls the SQL planner builds
/// from DataFusion's own instances (`OVERLAY(... PLACING ...)`).
pub fn guard(mut state: SessionState, limits: ValueLimits) -> Result<SessionState> {
    let mut guarded = HashMap::new();
    for (name, rule) in GUARDED {
        let Some(inner) = state.scalar_functions().get(*name).cloned() else {
            continue;
        };
        let udf = Arc::new(Guarded::udf(inner, *rule, limits));
        state.register_udf(Arc::clone(&udf))?;
        guarded.insert(name.to_string(), udf);
    }
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> =
        vec![Arc::new(GuardCalls { guarded })];
    rules.extend(state.analyzer().rules.iter().cloned());
    Ok(SessionStateBuilder::new_from_existing(state)
        .with_analyzer_rules(rules)
        .build())
}

/// Puts guards on the calls of guarded functions that do not have one.
#[derive(Debug)]
struct GuardCalls {
    guarded: HashMap<String, Arc<ScalarUDF>>,
}

impl AnalyzerRule for GuardCalls {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            node.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::ScalarFunction(mut f)
                        if !f.func.inner().as_any().is::<Guarded>()
                            && self.guarded.contains_key(f.func.name()) =>
                    {
                        if let Some(udf) = self.guarded.get(f.func.name()) {
                            f.func = Arc::clone(udf);
                        }
                        Ok(Transformed::yes(Expr::ScalarFunction(f)))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "meshql_guard_calls"
    }
}

#[derive(Debug)]
struct Guarded {
    inner: Arc<ScalarUDF>,
    rule: Rule,
    limits: ValueLimits,
}

impl PartialEq for Guarded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.rule == other.rule && self.limits == other.limits
    }
}

impl Eq for Guarded {}

impl Hash for Guarded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.rule.hash(state);
        self.limits.hash(state);
    }
}

impl Guarded {
    fn udf(inner: Arc<ScalarUDF>, rule: Rule, limits: ValueLimits) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            inner,
            rule,
            limits,
        })
    }

    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        // Constant arguments build one value even for a batch of no rows (how constant folding
        // and IN lists evaluate them).
        let constant = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if constant {
            args.number_rows.max(1)
        } else {
            args.number_rows
        };
        let a = &args.args;
        let bytes: u128 = match self.rule {
            Rule::Repeat if a.len() == 2 => {
                let (lens, counts) = (byte_lengths(&a[0], rows)?, ints(&a[1], rows)?);
                lens.iter()
                    .zip(&counts)
                    .map(|(l, n)| *l as u128 * (*n).max(0) as u128)
                    .sum()
            }
            Rule::Pad if a.len() >= 2 => ints(&a[1], rows)?
                .iter()
                .map(|n| (*n).max(0) as u128 * 4)
                .sum(),
            Rule::ArrayRepeat if a.len() == 2 => {
                let (sizes, counts) = (element_sizes(&a[0], rows)?, ints(&a[1], rows)?);
                sizes
                    .iter()
                    .zip(&counts)
                    .map(|(s, n)| *s as u128 * (*n).max(0) as u128)
                    .sum()
            }
            Rule::ArrayResize if a.len() >= 2 => {
                let width = list_element_width(&a[0]);
                ints(&a[1], rows)?
                    .iter()
                    .map(|n| (*n).max(0) as u128 * width)
                    .sum()
            }
            Rule::Range { inclusive } => range_elements(a, rows, inclusive)? * 8,
            Rule::Replace if a.len() == 3 => {
                let (text, from, to) = (
                    byte_lengths(&a[0], rows)?,
                    byte_lengths(&a[1], rows)?,
                    byte_lengths(&a[2], rows)?,
                );
                (0..rows)
                    .map(|i| {
                        let (s, f, t) = (text[i] as u128, from[i] as u128, to[i] as u128);
                        // An empty pattern matches between every character.
                        match s.checked_div(f) {
                            Some(matches) => s + matches * t,
                            None => (s + 1) * t + s,
                        }
                    })
                    .sum()
            }
            Rule::RegexpReplace if a.len() >= 3 => {
                let (text, replacement) = (byte_lengths(&a[0], rows)?, byte_lengths(&a[2], rows)?);
                // Every position may match; each `\N` copies at most the whole text.
                let refs = backreferences(&a[2]);
                (0..rows)
                    .map(|i| {
                        let (s, r) = (text[i] as u128, replacement[i] as u128);
                        (s + 1) * r + s + refs * s
                    })
                    .sum()
            }
            Rule::Overlay if a.len() >= 3 => {
                check_overlay(a, rows)?;
                0
            }
            Rule::DateTrunc if a.len() >= 2 => {
                let lowest = i64::MIN as i128 + DATE_TRUNC_MARGIN_NANOS;
                let highest = i64::MAX as i128 - DATE_TRUNC_MARGIN_NANOS;
                if nanos(&a[1], rows)?
                    .iter()
                    .any(|n| *n != 0 && !(lowest..=highest).contains(n))
                {
                    return exec_err!(
                        "date_trunc: the timestamp is too close to the ends of the supported range \
                         (1678-09 to 2261-03)"
                    );
                }
                0
            }
            Rule::Levenshtein if a.len() == 2 => {
                let (x, y) = (byte_lengths(&a[0], rows)?, byte_lengths(&a[1], rows)?);
                let cells: u128 = x.iter().zip(&y).map(|(a, b)| *a as u128 * *b as u128).sum();
                if cells > LEVENSHTEIN_MAX_CELLS {
                    return Err(resources_datafusion_err!(
                        "levenshtein of strings this long would compare {cells} character pairs \
                         in one batch; the limit is {LEVENSHTEIN_MAX_CELLS}"
                    ));
                }
                0
            }
            _ => 0,
        };
        if bytes > self.limits.max_bytes as u128 {
            return Err(resources_datafusion_err!(
                "`{}` would build {} in one batch of {rows} rows; the limit is {} ({})",
                self.inner.name(),
                human::bytes(bytes),
                human::bytes(self.limits.max_bytes as u128),
                self.limits.setting
            ));
        }
        Ok(())
    }
}

#[warn(clippy::missing_trait_methods)]
impl ScalarUDFImpl for Guarded {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated)]
        self.inner.inner().display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if self.rule == Rule::StableDecimal
            && let Some(input) = args.arg_fields.first()
            && matches!(
                input.data_type(),
                DataType::Decimal128(..) | DataType::Decimal256(..)
            )
        {
            let input = Arc::clone(input);
            let field = self.inner.return_field_from_args(args)?;
            return Ok(Arc::new(
                field
                    .as_ref()
                    .clone()
                    .with_data_type(input.data_type().clone()),
            ));
        }
        self.inner.return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.inner().is_nullable(args, schema)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.rule == Rule::Clock {
            return clock(&args);
        }
        self.check(&args)?;
        let promised = args.return_field.data_type().clone();
        // The implementation directly: `ScalarUDF::invoke_with_args` asserts the type we are
        // about to correct (in debug builds only).
        let result = self.inner.inner().invoke_with_args(args)?;
        if result.data_type() == promised || !widens(&result.data_type(), &promised) {
            return Ok(result);
        }
        // Downstream operators were planned for the promised type, which holds every value.
        result.cast_to(&promised, None)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.inner().with_updated_config(config)?;
        Some(Self::udf(Arc::new(updated), self.rule, self.limits))
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        // The inner function may rewrite itself (now() becomes a literal, nested `greatest`
        // calls flatten): calls of it in the rewrite get their guard back, and the rewrite keeps
        // the type the expressions around it were coerced for.
        let me = Arc::new(Self::udf(Arc::clone(&self.inner), self.rule, self.limits));
        let promised = info
            .get_data_type(&Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::clone(&me),
                args.clone(),
            )))
            .ok();
        match self.inner.simplify(args, info)? {
            ExprSimplifyResult::Original(args) => Ok(ExprSimplifyResult::Original(args)),
            ExprSimplifyResult::Simplified(expr) => {
                let expr = match (promised, info.get_data_type(&expr)) {
                    (Some(promised), Ok(got)) if got != promised => {
                        Expr::Cast(Cast::new(Box::new(expr), promised))
                    }
                    _ => expr,
                };
                let rewrapped = expr.transform_up(|e| match e {
                    Expr::ScalarFunction(mut f)
                        if f.func.name() == self.inner.name()
                            && !f.func.inner().as_any().is::<Guarded>() =>
                    {
                        f.func = Arc::clone(&me);
                        Ok(Transformed::yes(Expr::ScalarFunction(f)))
                    }
                    other => Ok(Transformed::no(other)),
                })?;
                Ok(ExprSimplifyResult::Simplified(rewrapped.data))
            }
        }
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<datafusion::logical_expr::preimage::PreimageResult> {
        self.inner.inner().preimage(args, lit_expr, info)
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(
        &self,
        args: &[datafusion::logical_expr::ExpressionPlacement],
    ) -> datafusion::logical_expr::ExpressionPlacement {
        self.inner.inner().placement(args)
    }
}

/// The guard of a function call, if `expr` is one (tests look through it).
#[cfg(test)]
fn is_guarded(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if f.func.inner().as_any().is::<Guarded>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    fn session(max_bytes: usize) -> SessionContext {
        let state = guard(
            SessionContext::new().state(),
            ValueLimits {
                max_bytes,
                setting: "test.limit",
            },
        )
        .unwrap();
        SessionContext::new_with_state(state)
    }

    async fn run(
        ctx: &SessionContext,
        sql: &str,
    ) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        ctx.sql(sql).await?.collect().await
    }

    #[tokio::test]
    async fn huge_results_are_refused_before_they_are_built() {
        let ctx = session(64 << 20);
        for sql in [
            "SELECT repeat('x', 2147483647)",
            "SELECT lpad('a', 2000000000, 'bc')",
            "SELECT array_length(array_repeat(1, 1000000000))",
            "SELECT cardinality(range(1, 2000000000))",
            "SELECT cardinality(generate_series(DATE '2000-01-01', DATE '9999-01-01', INTERVAL '1 minute'))",
            "SELECT length(replace(repeat('a', 100000), 'a', repeat('b', 100000)))",
            "SELECT length(regexp_replace(repeat('a', 100000), 'a', repeat('b', 1000), 'g'))",
            "SELECT levenshtein(repeat('a', 300000), repeat('b', 300000))",
            "SELECT cardinality(array_resize([1], 1000000000))",
        ] {
            let err = run(&ctx, sql).await.unwrap_err();
            let ours = crate::error::Error::from(err);
            assert_eq!(
                ours.kind(),
                crate::error::ErrorKind::ResourceExhausted,
                "{sql}: {ours}"
            );
        }
        // Small values pass, with the same results as the unguarded functions.
        let batches = run(
            &ctx,
            "SELECT repeat('ab', 3) AS r, cardinality(range(1, 5)) AS n",
        )
        .await
        .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("ababab") && text.contains("| 4 "), "{text}");
    }

    #[tokio::test]
    async fn out_of_range_overlay_and_unfolded_clocks_are_answered() {
        let ctx = session(64 << 20);
        let err = run(
            &ctx,
            "SELECT overlay('abc' PLACING 'x' FROM -5 FOR 9223372036854775807)",
        )
        .await
        .unwrap_err();
        assert_eq!(
            crate::error::Error::from(err).kind(),
            crate::error::ErrorKind::UserInput
        );
        let batches = run(
            &ctx,
            "SELECT overlay('abcdef' PLACING 'xy' FROM 2 FOR 3) AS o",
        )
        .await
        .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("axyef"), "{text}");
        // A fold that fails leaves now() in the plan; it answers instead of failing Internal.
        let udf = ctx.state().scalar_functions().get("now").cloned().unwrap();
        assert!(is_guarded(&udf.call(vec![])));
    }
}
