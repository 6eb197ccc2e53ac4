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

use std::any::Any;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::FieldRef;
use datafusion::arrow::datatypes::{DataType, Int64Type, IntervalMonthDayNanoType, TimeUnit};
use datafusion::common::ExprSchema;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ScalarValue, exec_err, resources_datafusion_err};
use datafusion::error::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::logical_expr::LogicalPlan;
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
        let rows = args.number_rows;
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
                human(bytes),
                human(self.limits.max_bytes as u128),
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
        // calls flatten): calls of it in the rewrite get their guard back.
        match self.inner.simplify(args, info)? {
            ExprSimplifyResult::Original(args) => Ok(ExprSimplifyResult::Original(args)),
            ExprSimplifyResult::Simplified(expr) => {
                let me = Arc::new(Self::udf(Arc::clone(&self.inner), self.rule, self.limits));
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

/// Whether every value of decimal type `from` fits decimal type `to` unchanged.
fn widens(from: &DataType, to: &DataType) -> bool {
    let digits = |t: &DataType| match t {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => Some((*p as i16, *s as i16)),
        _ => None,
    };
    match (digits(from), digits(to)) {
        (Some((fp, fs)), Some((tp, ts))) => ts >= fs && tp - ts >= fp - fs,
        _ => false,
    }
}

/// The current time as the function's return type: what `now()` and friends fold to when
/// planning could not fold them (DataFusion answers Internal there).
fn clock(args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
    let now = chrono::Utc::now()
        .timestamp_nanos_opt()
        .ok_or_else(|| resources_datafusion_err!("the clock is out of range"))?;
    let instant = ScalarValue::TimestampNanosecond(Some(now), Some("UTC".into()));
    let wanted = args.return_field.data_type();
    let value = match wanted {
        DataType::Time64(_) | DataType::Time32(_) => {
            let nanos_today = now.rem_euclid(86_400_000_000_000);
            ScalarValue::Time64Nanosecond(Some(nanos_today)).cast_to(wanted)?
        }
        _ => instant.cast_to(wanted)?,
    };
    Ok(ColumnarValue::Scalar(value))
}

/// Byte lengths of a text or binary argument, one per row (0 for nulls and other types).
fn byte_lengths(v: &ColumnarValue, rows: usize) -> Result<Vec<usize>> {
    if let ColumnarValue::Scalar(s) = v {
        let len = match s {
            ScalarValue::Utf8(Some(t))
            | ScalarValue::LargeUtf8(Some(t))
            | ScalarValue::Utf8View(Some(t)) => t.len(),
            ScalarValue::Binary(Some(b))
            | ScalarValue::LargeBinary(Some(b))
            | ScalarValue::BinaryView(Some(b))
            | ScalarValue::FixedSizeBinary(_, Some(b)) => b.len(),
            _ => 0,
        };
        return Ok(vec![len; rows]);
    }
    let array = v.to_array(rows)?;
    let lens = |f: &dyn Fn(usize) -> usize| -> Vec<usize> {
        (0..array.len())
            .map(|i| if array.is_null(i) { 0 } else { f(i) })
            .collect()
    };
    Ok(match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            lens(&|i| a.value_length(i) as usize)
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            lens(&|i| a.value_length(i) as usize)
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            lens(&|i| a.views()[i] as u32 as usize)
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            lens(&|i| a.value_length(i) as usize)
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            lens(&|i| a.value_length(i) as usize)
        }
        DataType::BinaryView => {
            let a = array.as_binary_view();
            lens(&|i| a.views()[i] as u32 as usize)
        }
        _ => vec![0; array.len()],
    })
}

/// An integer argument, one value per row (nulls as 0; values past i64 as i64::MAX).
fn ints(v: &ColumnarValue, rows: usize) -> Result<Vec<i64>> {
    if let ColumnarValue::Scalar(s) = v {
        let n = scalar_int(s);
        return Ok(vec![n; rows]);
    }
    let array = v.to_array(rows)?;
    if !array.data_type().is_integer() {
        return Ok(vec![0; array.len()]);
    }
    let cast = datafusion::arrow::compute::cast(&array, &DataType::Int64)?;
    let values = cast.as_primitive::<Int64Type>();
    Ok((0..values.len())
        .map(|i| {
            if values.is_null(i) {
                // A value too large for i64 (a UInt64) casts to null: assume the worst.
                if array.is_null(i) { 0 } else { i64::MAX }
            } else {
                values.value(i)
            }
        })
        .collect())
}

fn scalar_int(s: &ScalarValue) -> i64 {
    if s.is_null() || !s.data_type().is_integer() {
        return 0;
    }
    match s.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(Some(n))) => n,
        _ => i64::MAX,
    }
}

/// Bytes of one element repeated by `array_repeat`, per row.
fn element_sizes(v: &ColumnarValue, rows: usize) -> Result<Vec<usize>> {
    let data_type = v.data_type();
    if let Some(width) = data_type.primitive_width() {
        return Ok(vec![width.max(1); rows]);
    }
    if matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    ) {
        return Ok(byte_lengths(v, rows)?.into_iter().map(|l| l + 16).collect());
    }
    Ok(match v {
        ColumnarValue::Scalar(s) => vec![s.size(); rows],
        ColumnarValue::Array(a) => {
            let each = a.get_array_memory_size() / a.len().max(1);
            vec![each.max(8); rows]
        }
    })
}

/// Bytes of one element of a list argument (8 when unknown).
fn list_element_width(v: &ColumnarValue) -> u128 {
    match v.data_type() {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().primitive_width().unwrap_or(16).max(1) as u128
        }
        _ => 8,
    }
}

/// Elements the scalar `range`/`generate_series` would build over all rows.
fn range_elements(args: &[ColumnarValue], rows: usize, inclusive: bool) -> Result<u128> {
    let temporal = args.first().is_some_and(|a| {
        matches!(
            a.data_type(),
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
        )
    });
    let wide = |v: Vec<i64>| -> Vec<i128> { v.into_iter().map(i128::from).collect() };
    let (start, stop, step) = if temporal {
        if args.len() != 3 {
            return Ok(0);
        }
        (
            nanos(&args[0], rows)?,
            nanos(&args[1], rows)?,
            step_nanos(&args[2], rows)?,
        )
    } else {
        match args.len() {
            1 => (vec![0; rows], wide(ints(&args[0], rows)?), vec![1; rows]),
            2 => (
                wide(ints(&args[0], rows)?),
                wide(ints(&args[1], rows)?),
                vec![1; rows],
            ),
            3 => (
                wide(ints(&args[0], rows)?),
                wide(ints(&args[1], rows)?),
                wide(ints(&args[2], rows)?),
            ),
            _ => return Ok(0),
        }
    };
    let mut total: u128 = 0;
    for i in 0..rows {
        let (a, b, s) = (start[i], stop[i], step[i]);
        // Zero steps are refused by the function itself; steps away from `stop` build nothing.
        if s == 0 || (b - a).signum() * s.signum() < 0 {
            continue;
        }
        total += ((b - a) / s).unsigned_abs() + u128::from(inclusive);
    }
    Ok(total)
}

/// A date or timestamp argument as nanoseconds since the epoch, per row (computed here: Arrow's
/// own date-to-timestamp cast multiplies without checking and overflows on far dates).
fn nanos(v: &ColumnarValue, rows: usize) -> Result<Vec<i128>> {
    use datafusion::arrow::datatypes::{
        Date32Type, Date64Type, TimestampMicrosecondType, TimestampMillisecondType,
        TimestampNanosecondType, TimestampSecondType,
    };
    let array = v.to_array(rows)?;
    fn scaled<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
        array: &dyn Array,
        factor: i128,
    ) -> Vec<i128>
    where
        T::Native: Into<i64>,
    {
        let a = array.as_primitive::<T>();
        (0..a.len())
            .map(|i| {
                if a.is_null(i) {
                    0
                } else {
                    a.value(i).into() as i128 * factor
                }
            })
            .collect()
    }
    Ok(match array.data_type() {
        DataType::Date32 => scaled::<Date32Type>(&array, 86_400_000_000_000),
        DataType::Date64 => scaled::<Date64Type>(&array, 1_000_000),
        DataType::Timestamp(TimeUnit::Second, _) => {
            scaled::<TimestampSecondType>(&array, 1_000_000_000)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scaled::<TimestampMillisecondType>(&array, 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            scaled::<TimestampMicrosecondType>(&array, 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            scaled::<TimestampNanosecondType>(&array, 1)
        }
        _ => vec![0; array.len()],
    })
}

/// The shortest length of an interval step in nanoseconds (a month is at least 28 days, a day
/// at least 23 hours), per row.
fn step_nanos(v: &ColumnarValue, rows: usize) -> Result<Vec<i128>> {
    let array = v.to_array(rows)?;
    let wanted = DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano);
    let Ok(cast) = datafusion::arrow::compute::cast(&array, &wanted) else {
        return Ok(vec![0; rows]);
    };
    let values = cast.as_primitive::<IntervalMonthDayNanoType>();
    const DAY: i128 = 23 * 3_600_000_000_000;
    Ok((0..values.len())
        .map(|i| {
            if values.is_null(i) {
                return 0;
            }
            let v = values.value(i);
            v.months as i128 * 28 * DAY + v.days as i128 * DAY + v.nanoseconds as i128
        })
        .collect())
}

/// `\N` references in a literal replacement (unknown for a column: assume a few).
fn backreferences(v: &ColumnarValue) -> u128 {
    match v {
        ColumnarValue::Scalar(s) => match s {
            ScalarValue::Utf8(Some(t))
            | ScalarValue::LargeUtf8(Some(t))
            | ScalarValue::Utf8View(Some(t)) => {
                (t.matches('\\').count() + t.matches('$').count()) as u128
            }
            _ => 0,
        },
        ColumnarValue::Array(_) => 4,
    }
}

/// `overlay` indexes bytes with its arguments unchecked: a negative position or a length past
/// i32 panics inside DataFusion.
fn check_overlay(args: &[ColumnarValue], rows: usize) -> Result<()> {
    let positions = ints(&args[2], rows)?;
    if let Some(p) = positions
        .iter()
        .find(|p| !(1..=i32::MAX as i64).contains(p))
    {
        return exec_err!("overlay: FROM must be between 1 and {}, not {p}", i32::MAX);
    }
    if let Some(len) = args.get(3) {
        let lens = ints(len, rows)?;
        if let Some(l) = lens.iter().find(|l| !(0..=i32::MAX as i64).contains(l)) {
            return exec_err!("overlay: FOR must be between 0 and {}, not {l}", i32::MAX);
        }
    }
    Ok(())
}

fn human(bytes: u128) -> String {
    const MIB: u128 = 1024 * 1024;
    if bytes >= 1024 * MIB {
        format!("{:.1} GiB", bytes as f64 / (1024 * MIB) as f64)
    } else {
        format!("{} MiB", bytes.div_ceil(MIB))
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
