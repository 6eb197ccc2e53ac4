//! What a guarded function's arguments say about the size of its result: byte lengths,
//! integers, element sizes and range lengths, per row, from scalars or arrays.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type, IntervalMonthDayNanoType, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, resources_datafusion_err};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

/// Whether every value of decimal type `from` fits decimal type `to` unchanged.
pub(super) fn widens(from: &DataType, to: &DataType) -> bool {
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
pub(super) fn clock(args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
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
pub(super) fn byte_lengths(v: &ColumnarValue, rows: usize) -> Result<Vec<usize>> {
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
pub(super) fn ints(v: &ColumnarValue, rows: usize) -> Result<Vec<i64>> {
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
pub(super) fn element_sizes(v: &ColumnarValue, rows: usize) -> Result<Vec<usize>> {
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
pub(super) fn list_element_width(v: &ColumnarValue) -> u128 {
    match v.data_type() {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().primitive_width().unwrap_or(16).max(1) as u128
        }
        _ => 8,
    }
}

/// Elements the scalar `range`/`generate_series` would build over all rows.
pub(super) fn range_elements(args: &[ColumnarValue], rows: usize, inclusive: bool) -> Result<u128> {
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
pub(super) fn nanos(v: &ColumnarValue, rows: usize) -> Result<Vec<i128>> {
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
pub(super) fn backreferences(v: &ColumnarValue) -> u128 {
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
pub(super) fn check_overlay(args: &[ColumnarValue], rows: usize) -> Result<()> {
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
