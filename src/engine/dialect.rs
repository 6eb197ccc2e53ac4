//! The SQL dialect client statements are parsed with: DataFusion's generic dialect with the
//! time-travel clauses (`VERSION AS OF`, `TIMESTAMP AS OF`) on. The guard parses with it and
//! [`super::time_travel`] reads the clauses it lets through.

use std::any::TypeId;

use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};

/// DataFusion's generic dialect with the time-travel clauses on: the parser takes it for the
/// generic one (its type id), and every choice the generic dialect makes is passed on to it.
#[derive(Debug, Default)]
pub struct MeshDialect {
    generic: GenericDialect,
}

impl MeshDialect {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The generic dialect's answers, passed on (a unit test checks both parse alike).
macro_rules! generic_answers {
    ($($flag:ident),* $(,)?) => {
        $(fn $flag(&self) -> bool {
            self.generic.$flag()
        })*
    };
}

impl Dialect for MeshDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.generic.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.generic.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.generic.is_identifier_part(ch)
    }

    generic_answers!(
        supports_unicode_string_literal,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_multiline_comment_hints,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_lambda_functions,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
    );
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParserBuilder;

    use super::*;

    #[test]
    fn the_dialect_parses_what_the_generic_one_does() {
        let generic = GenericDialect {};
        let mesh = MeshDialect::new();
        for sql in [
            "SELECT a, count(*) FROM t WHERE b LIKE 'x%' GROUP BY a ORDER BY 2 DESC LIMIT 3",
            "SELECT * FROM t1 JOIN t2 USING (k) LEFT JOIN t3 ON t3.k = t1.k",
            "SELECT CASE WHEN x THEN 1 ELSE 2 END, CAST(y AS DECIMAL(10, 2)) FROM t",
            "SELECT * EXCLUDE (a) FROM \"Quoted\".t AS v",
            "SELECT x FROM t AS timestamp_alias",
        ] {
            let parse = |d: &dyn datafusion::sql::sqlparser::dialect::Dialect| {
                DFParserBuilder::new(sql)
                    .with_dialect(d)
                    .build()
                    .and_then(|mut p| p.parse_statements())
                    .map(|s| format!("{s:?}"))
                    .unwrap()
            };
            assert_eq!(parse(&generic), parse(&mesh), "{sql}");
        }
    }
}
