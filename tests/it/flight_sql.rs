//! The Flight SQL protocol as BI drivers use it: identity, SQL info, type info, keys,
//! prepared statements, refusals of write paths, cancellation.

use std::sync::Arc;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{
    CommandGetPrimaryKeys, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, ProstMessageExt,
    SqlInfo,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightInfo,
};
use datafusion::arrow::array::{
    Array, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::{
    Client, anonymous_client, client, client_as, error_of, fetch, runtime, serve_demo, serve_with,
    status,
};

async fn rows(c: &mut Client, info: FlightInfo) -> usize {
    fetch(c, info).await.iter().map(|b| b.num_rows()).sum()
}

#[test]
fn identity_handshake_tokens_and_refusals() {
    runtime().block_on(async {
        let served = serve_demo(false).await;
        let addr = served.addr;

        // No credentials: every RPC but the handshake is refused.
        let mut anon = anonymous_client(addr).await;
        let err = anon.execute("SELECT 1".into(), None).await.unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);
        let err = anon.get_catalogs().await.unwrap_err();
        assert_eq!(status(err).code(), Code::Unauthenticated);

        // A wrong password.
        let err = anon.handshake("analyst", "nope").await.unwrap_err();
        assert!(
            err.to_string().contains("invalid user name or password"),
            "{err}"
        );

        // The handshake answers a bearer token (header and payload); it works on its own.
        let mut analyst = anonymous_client(addr).await;
        let payload = analyst
            .handshake("analyst", "analyst")
            .await
            .expect("login");
        let token = String::from_utf8(payload.to_vec()).unwrap();
        assert!(token.starts_with("mq1."), "{token}");
        let mut by_token = anonymous_client(addr).await;
        by_token.set_token(token.clone());
        let info = by_token
            .execute("SELECT 1 AS one".into(), None)
            .await
            .expect("query by token");
        assert_eq!(rows(&mut by_token, info).await, 1);
        let mut forged = anonymous_client(addr).await;
        forged.set_token(format!("{token}x"));
        assert_eq!(
            status(forged.execute("SELECT 1".into(), None).await.unwrap_err()).code(),
            Code::Unauthenticated
        );

        // A ticket is bound to the principal it was issued to.
        let mut admin = client(addr).await;
        let info = admin.execute("SELECT 1 AS one".into(), None).await.unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let err = match analyst.do_get(ticket).await {
            Err(e) => status(e),
            Ok(s) => status(s.try_collect::<Vec<_>>().await.unwrap_err()),
        };
        assert_eq!(err.code(), Code::PermissionDenied);
        assert_eq!(err.message(), "this ticket was issued to another principal");

        // Running pipelines is for administrators until domain policies exist.
        let mut remote = meshql::client::Client::connect(&format!("grpc://{addr}"))
            .await
            .unwrap();
        remote.login("analyst", "analyst").await.unwrap();
        let err = remote.run_pipeline(&[], false).await.unwrap_err();
        assert_eq!(err.kind(), meshql::ErrorKind::PermissionDenied);
    });
}

#[test]
fn sql_info_type_info_and_keys_answer_with_the_protocol_schemas() {
    runtime().block_on(async {
        let served = serve_demo(false).await;
        let mut c = client(served.addr).await;

        let info = c.get_sql_info(vec![]).await.unwrap();
        let all = fetch(&mut c, info).await;
        let n: usize = all.iter().map(|b| b.num_rows()).sum();
        assert!(n >= 85, "only {n} SQL info keys");
        let wanted = vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
            SqlInfo::FlightSqlServerTransaction,
            SqlInfo::FlightSqlServerCancel,
            SqlInfo::SqlIdentifierQuoteChar,
            SqlInfo::SqlKeywords,
            SqlInfo::SqlNumericFunctions,
        ];
        let info = c.get_sql_info(wanted.clone()).await.unwrap();
        let batches = fetch(&mut c, info).await;
        let names = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::UInt32Array>()
            .unwrap();
        let got: Vec<u32> = names.iter().map(|v| v.unwrap()).collect();
        let mut want: Vec<u32> = wanted.iter().map(|w| *w as u32).collect();
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want);
        let text = pretty_format_batches(&batches).unwrap().to_string();
        assert!(text.contains("meshql"), "{text}");
        assert!(text.contains("abs"), "numeric functions listed: {text}");

        let info = c
            .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
            .await
            .unwrap();
        let types = fetch(&mut c, info).await;
        let text = pretty_format_batches(&types).unwrap().to_string();
        for t in [
            "VARCHAR",
            "BIGINT",
            "DOUBLE",
            "DECIMAL",
            "DATE",
            "TIMESTAMP",
            "BOOLEAN",
        ] {
            assert!(text.contains(t), "{t} missing from type info");
        }

        let info = c
            .get_primary_keys(CommandGetPrimaryKeys {
                catalog: Some("sales".into()),
                db_schema: Some("gold".into()),
                table: "daily_revenue".into(),
            })
            .await
            .unwrap();
        let schema = info.clone().try_decode_schema().unwrap();
        assert_eq!(schema.fields().len(), 6);
        // From the product's contract: order_date then region.
        let keys = fetch(&mut c, info).await;
        let text = pretty_format_batches(&keys).unwrap().to_string();
        assert!(text.contains("| sales        | gold           | daily_revenue | order_date  |          | 1            |"), "{text}");
        assert!(text.contains("| sales        | gold           | daily_revenue | region      |          | 2            |"), "{text}");
        // A dataset without a contract declares none.
        let info = c
            .get_primary_keys(CommandGetPrimaryKeys {
                catalog: Some("sales".into()),
                db_schema: Some("silver".into()),
                table: "stores".into(),
            })
            .await
            .unwrap();
        assert_eq!(rows(&mut c, info).await, 0);
    });
}

#[test]
fn prepared_statements_with_twelve_parameters_and_question_marks() {
    runtime().block_on(async {
        let served = serve_demo(true).await;
        let mut c = client(served.addr).await;

        // Twelve numbered parameters: the schema orders them $1, $2, ..., $10, $11, $12.
        let sql = (1..=12).map(|i| format!("${i} AS p{i}")).collect::<Vec<_>>().join(", ");
        let mut stmt = c.prepare(format!("SELECT {sql}"), None).await.expect("prepare");
        let names: Vec<String> = stmt.parameter_schema().unwrap().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, (1..=12).map(|i| format!("${i}")).collect::<Vec<_>>());
        let mut fields = Vec::new();
        let mut columns: Vec<Arc<dyn Array>> = Vec::new();
        for i in 0..12 {
            let (t, a): (DataType, Arc<dyn Array>) = match i % 6 {
                0 => (DataType::Int64, Arc::new(Int64Array::from(vec![i as i64 * 1000]))),
                1 => (DataType::Utf8, Arc::new(StringArray::from(vec![format!("text {i}")]))),
                2 => (DataType::Float64, Arc::new(Float64Array::from(vec![i as f64 + 0.5]))),
                3 => (DataType::Boolean, Arc::new(BooleanArray::from(vec![i % 2 == 0]))),
                4 => (DataType::Date32, Arc::new(Date32Array::from(vec![20_000 + i]))),
                _ => (DataType::Int32, Arc::new(Int32Array::from(vec![-i]))),
            };
            fields.push(Field::new(format!("${}", i + 1), t, true));
            columns.push(a);
        }
        let params = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        stmt.set_parameters(params).unwrap();
        let info = stmt.execute().await.expect("execute");
        let batches = fetch(&mut c, info).await;
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let row = text.lines().nth(3).unwrap();
        assert_eq!(
            row,
            "| 0  | text 1 | 2.5 | false | 2024-10-08 | -5 | 6000 | text 7 | 8.5 | false | 2024-10-14 | -11 |"
        );

        // `?` placeholders, typed from the query; one row of parameters is one execution.
        let mut stmt = c
            .prepare(
                "SELECT count(*) AS n FROM sales.gold.daily_revenue WHERE region = ? AND units > ?".into(),
                None,
            )
            .await
            .unwrap();
        let pschema = stmt.parameter_schema().unwrap().clone();
        assert_eq!(pschema.fields().len(), 2);
        let params = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("$1", DataType::Utf8, false),
                Field::new("$2", DataType::Int64, false),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["north", "south"])),
                Arc::new(Int64Array::from(vec![40, 1000])),
            ],
        )
        .unwrap();
        stmt.set_parameters(params).unwrap();
        let info = stmt.execute().await.unwrap();
        assert_eq!(info.endpoint.len(), 2);
        let batches = fetch(&mut c, info).await;
        let counts: Vec<i64> = batches
            .iter()
            .map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0))
            .collect();
        let expect = |region: &str, units: i64| {
            format!("SELECT count(*) AS n FROM sales.gold.daily_revenue WHERE region = '{region}' AND units > {units}")
        };
        let mut literal = Vec::new();
        for (region, units) in [("north", 40), ("south", 1000)] {
            let info = c.execute(expect(region, units), None).await.unwrap();
            let b = fetch(&mut c, info).await;
            literal.push(b[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0));
        }
        assert_eq!(counts, literal);
        assert!(counts[0] > 0 && counts[1] == 0, "{counts:?}");
        stmt.close().await.expect("close");
    });
}

#[test]
fn forged_prepared_handles_and_write_paths_are_refused() {
    runtime().block_on(async {
        let served = serve_demo(false).await;
        let mut c = client(served.addr).await;
        let token = token_of(served.addr, "admin").await;
        let channel = Channel::from_shared(format!("http://{}", served.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut raw = FlightServiceClient::new(channel);
        let forged = CommandPreparedStatementQuery {
            prepared_statement_handle:
                br#"{"sql":"SELECT 1","principal":"admin"}0123456789abcdef0123456789abcdef"#
                    .to_vec()
                    .into(),
        };
        let mut request =
            tonic::Request::new(FlightDescriptor::new_cmd(forged.as_any().encode_to_vec()));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let err = raw.get_flight_info(request).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(
            err.message().contains("invalid prepared statement handle"),
            "{}",
            err.message()
        );

        let err = c
            .execute_update("DELETE FROM sales.gold.daily_revenue".into(), None)
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::PermissionDenied);
        let err = c.begin_transaction().await.unwrap_err();
        assert_eq!(status(err).code(), Code::InvalidArgument);
    });
}

#[test]
fn cancel_flight_info_stops_a_query() {
    runtime().block_on(async {
        let served = serve_demo(true).await;
        let mut c = client(served.addr).await;
        // Big enough to run for a long time: 5860^3 rows.
        let sql = "SELECT count(*) FROM sales.silver.clean_transactions a, sales.silver.clean_transactions b, \
                   sales.silver.clean_transactions x WHERE a.amount + b.amount + x.amount < 0";
        let info = c.execute(sql.into(), None).await.unwrap();
        let stream = c.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap();
        let reader = tokio::spawn(stream.try_collect::<Vec<_>>());

        let request = CancelFlightInfoRequest { info: Some(info.clone()) };
        let action = Action::new("CancelFlightInfo", request.encode_to_vec());
        let mut results = c.do_action(action).await.expect("cancel");
        let result = results.message().await.unwrap().unwrap();
        let result = CancelFlightInfoResult::decode(result.body.as_ref()).unwrap();
        assert_eq!(result.status, CancelStatus::Cancelled as i32);
        let err = reader.await.unwrap().unwrap_err();
        assert_eq!(status(err).code(), Code::Cancelled);

        // The ticket stays refused.
        let again = match c.do_get(info.endpoint[0].ticket.clone().unwrap()).await {
            Err(e) => status(e),
            Ok(s) => status(s.try_collect::<Vec<_>>().await.unwrap_err()),
        };
        assert_eq!(again.code(), Code::Cancelled);
        // And the server keeps serving.
        let mut other = client_as(served.addr, "sales").await;
        let info = other.execute("SELECT 1".into(), None).await.unwrap();
        assert_eq!(rows(&mut other, info).await, 1);
    });
}

/// A raw Flight call with the bearer token (and a cookie) attached.
fn authed<T>(message: T, token: &str, cookie: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(c) = cookie {
        request.metadata_mut().insert("cookie", c.parse().unwrap());
    }
    request
}

/// Logs `user` in (password = user name) and answers the bearer token.
async fn token_of(addr: std::net::SocketAddr, user: &str) -> String {
    let mut login = anonymous_client(addr).await;
    let payload = login.handshake(user, user).await.expect("login");
    String::from_utf8(payload.to_vec()).expect("token")
}

/// Sends a Flight action; answers its decoded result and the session cookie it set, if any.
async fn act<M: Message + Default>(
    raw: &mut FlightServiceClient<Channel>,
    name: &str,
    body: Vec<u8>,
    token: &str,
    cookie: Option<&str>,
) -> (M, Option<String>) {
    let response = raw
        .do_action(authed(Action::new(name.to_string(), body), token, cookie))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let set_cookie = response
        .metadata()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut results = response.into_inner();
    let first = results
        .message()
        .await
        .expect("result")
        .expect("one result");
    (M::decode(first.body.as_ref()).expect("decodes"), set_cookie)
}

#[test]
fn session_options_set_the_current_domain_and_layer() {
    use meshql::proto::session::session_option_value::OptionValue;
    use meshql::proto::session::set_session_options_result::ErrorValue;
    use meshql::proto::session::{
        CloseSessionResult, GetSessionOptionsResult, SessionOptionValue, SetSessionOptionsRequest,
        SetSessionOptionsResult,
    };

    runtime().block_on(async {
        let served = serve_demo(true).await;
        let token = token_of(served.addr, "analyst").await;
        let channel = Channel::from_shared(format!("http://{}", served.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut raw = FlightServiceClient::new(channel);
        let text = |s: &str| SessionOptionValue {
            option_value: Some(OptionValue::StringValue(s.into())),
        };
        let options = |pairs: &[(&str, &str)]| {
            SetSessionOptionsRequest {
                session_options: pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), text(v)))
                    .collect(),
            }
            .encode_to_vec()
        };

        let (result, cookie): (SetSessionOptionsResult, _) = act(
            &mut raw,
            "SetSessionOptions",
            options(&[("catalog", "sales"), ("schema", "gold")]),
            &token,
            None,
        )
        .await;
        assert!(result.errors.is_empty(), "{result:?}");
        let cookie = cookie.expect("a session cookie");
        assert!(cookie.starts_with("arrow_flight_session_id="), "{cookie}");

        // Unqualified names now resolve in sales.gold.
        let mut c = anonymous_client(served.addr).await;
        c.set_token(token.clone());
        c.set_header("cookie", cookie.clone());
        let info = c
            .execute("SELECT count(*) AS n FROM daily_revenue".into(), None)
            .await
            .expect("unqualified");
        let batches = fetch(&mut c, info).await;
        assert_eq!(
            batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0),
            360
        );

        // Bad values and names are reported per option; the session keeps its settings.
        let (result, _): (SetSessionOptionsResult, _) = act(
            &mut raw,
            "SetSessionOptions",
            options(&[("catalog", "nope"), ("colour", "red")]),
            &token,
            Some(&cookie),
        )
        .await;
        assert_eq!(
            result.errors["catalog"].value,
            ErrorValue::InvalidValue as i32
        );
        assert_eq!(
            result.errors["colour"].value,
            ErrorValue::InvalidName as i32
        );
        let (got, _): (GetSessionOptionsResult, _) =
            act(&mut raw, "GetSessionOptions", vec![], &token, Some(&cookie)).await;
        assert_eq!(got.session_options["catalog"], text("sales"));
        assert_eq!(got.session_options["schema"], text("gold"));

        // After CloseSession, names resolve against the defaults again, and the options read
        // back say so (a client never reads "no current catalog").
        let _: (CloseSessionResult, _) =
            act(&mut raw, "CloseSession", vec![], &token, Some(&cookie)).await;
        let (got, _): (GetSessionOptionsResult, _) =
            act(&mut raw, "GetSessionOptions", vec![], &token, Some(&cookie)).await;
        assert_eq!(got.session_options["catalog"], text("sales"));
        assert_eq!(got.session_options["schema"], text("raw"));
        let err = c
            .execute("SELECT count(*) FROM daily_revenue".into(), None)
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::NotFound);

        // The `catalog` and `schema` headers (the JDBC driver's URL properties) choose for one
        // call; names they give that the mesh does not have are errors naming them.
        c.set_header("catalog", "finance");
        c.set_header("schema", "gold");
        let info = c
            .execute("SELECT count(*) AS n FROM revenue_vs_target".into(), None)
            .await
            .expect("resolved in finance.gold");
        assert!(
            pretty_format_batches(&fetch(&mut c, info).await)
                .unwrap()
                .to_string()
                .contains("| 12 |")
        );
        c.set_header("schema", "platinum");
        let err = status(c.execute("SELECT 1".into(), None).await.unwrap_err());
        assert_eq!(err.code(), Code::NotFound);
        assert!(
            err.message()
                .contains("`platinum`, which is no layer of domain `finance`"),
            "{err:?}"
        );
        c.set_header("catalog", "nowhere");
        let err = status(c.execute("SELECT 1".into(), None).await.unwrap_err());
        assert_eq!(err.code(), Code::NotFound);
        assert!(
            err.message()
                .contains("`nowhere`, which is no domain of this mesh"),
            "{err:?}"
        );
    });
}

fn ingest_command(
    table: &str,
    layer: &str,
    if_not_exist: i32,
    if_exists: i32,
) -> arrow_flight::sql::CommandStatementIngest {
    arrow_flight::sql::CommandStatementIngest {
        table_definition_options: Some(arrow_flight::sql::TableDefinitionOptions {
            if_not_exist,
            if_exists,
        }),
        table: table.into(),
        schema: Some(layer.into()),
        catalog: Some("sales".into()),
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

fn returns_batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let reasons: Vec<String> = ids.clone().map(|i| format!("reason {i}")).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Int64, false),
            Field::new("reason", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(reasons)),
        ],
    )
    .unwrap()
}

#[test]
fn ingest_creates_appends_and_replaces_raw_tables() {
    use arrow_flight::sql::{TableExistsOption as Exists, TableNotExistOption as Missing};

    runtime().block_on(async {
        let served = serve_demo(false).await;
        let mut admin = client(served.addr).await;
        let send = |batch: RecordBatch| futures::stream::iter([Ok(batch)]);
        let count = |c: &mut Client| {
            let mut c = c.clone();
            async move {
                let info = c
                    .execute(
                        "SELECT count(*), sum(order_id) FROM sales.raw.returns".into(),
                        None,
                    )
                    .await
                    .unwrap();
                let b = fetch(&mut c, info).await;
                let n = b[0]
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0);
                let s = b[0]
                    .column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0);
                (n, s)
            }
        };

        let create = ingest_command(
            "returns",
            "raw",
            Missing::Create as i32,
            Exists::Fail as i32,
        );
        assert_eq!(
            admin
                .execute_ingest(create.clone(), send(returns_batch(0..3)))
                .await
                .unwrap(),
            3
        );
        assert_eq!(count(&mut admin).await, (3, 3));

        let append = ingest_command(
            "returns",
            "raw",
            Missing::Fail as i32,
            Exists::Append as i32,
        );
        assert_eq!(
            admin
                .execute_ingest(append, send(returns_batch(10..12)))
                .await
                .unwrap(),
            2
        );
        assert_eq!(count(&mut admin).await, (5, 24));

        let replace = ingest_command(
            "returns",
            "raw",
            Missing::Create as i32,
            Exists::Replace as i32,
        );
        assert_eq!(
            admin
                .execute_ingest(replace, send(returns_batch(100..101)))
                .await
                .unwrap(),
            1
        );
        assert_eq!(count(&mut admin).await, (1, 100));

        // Data that does not fit the table is refused and changes nothing.
        let wrong = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "other",
                DataType::Boolean,
                false,
            )])),
            vec![Arc::new(BooleanArray::from(vec![true]))],
        )
        .unwrap();
        let append = ingest_command(
            "returns",
            "raw",
            Missing::Fail as i32,
            Exists::Append as i32,
        );
        let err = admin.execute_ingest(append, send(wrong)).await.unwrap_err();
        assert_eq!(status(err).code(), Code::InvalidArgument);
        assert_eq!(count(&mut admin).await, (1, 100));

        // Creating what exists, appending to what does not, writing outside raw, non-admins.
        let err = admin
            .execute_ingest(create, send(returns_batch(0..1)))
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::FailedPrecondition);
        let missing = ingest_command(
            "nothing_here",
            "raw",
            Missing::Fail as i32,
            Exists::Append as i32,
        );
        let err = admin
            .execute_ingest(missing, send(returns_batch(0..1)))
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::NotFound);
        let gold = ingest_command(
            "sneaky",
            "gold",
            Missing::Create as i32,
            Exists::Fail as i32,
        );
        let err = admin
            .execute_ingest(gold, send(returns_batch(0..1)))
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::PermissionDenied);
        let source = ingest_command(
            "transactions",
            "raw",
            Missing::Create as i32,
            Exists::Replace as i32,
        );
        let err = admin
            .execute_ingest(source, send(returns_batch(0..1)))
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::PermissionDenied);
        let mut analyst = client_as(served.addr, "analyst").await;
        let append = ingest_command(
            "returns",
            "raw",
            Missing::Fail as i32,
            Exists::Append as i32,
        );
        let err = analyst
            .execute_ingest(append, send(returns_batch(0..1)))
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::PermissionDenied);
        assert_eq!(count(&mut admin).await, (1, 100));

        // A new process finds the ingested table in the warehouse.
        let restarted = crate::common::engine(served.path());
        let name = meshql::spec::DatasetName::new("sales", "raw", "returns");
        assert!(restarted.catalog().store(&name).is_some());
        let overview = restarted.overview().await.unwrap();
        let text = pretty_format_batches(&[overview]).unwrap().to_string();
        let row: Vec<&str> = text
            .lines()
            .find(|l| l.contains("| returns "))
            .map(|l| l.split('|').map(str::trim).collect())
            .unwrap_or_default();
        assert_eq!(
            row.get(1..8),
            Some(&["sales", "raw", "returns", "ingested", "delta", "2", "1"][..]),
            "{text}"
        );
    });
}

#[test]
fn tls_and_client_certificates() {
    use meshql::client::{Client as MeshClient, ClientTls};

    runtime().block_on(async {
        let dir = crate::common::demo_mesh();
        let certs = crate::common::repo().join("tests/fixtures/tls");
        crate::common::edit(
            &dir.path().join("catalog/mesh.yaml"),
            "server:\n",
            &format!(
                "server:\n  tls:\n    cert: {0}/server.pem\n    key: {0}/server.key\n    client_ca: {0}/ca.pem\n",
                certs.display()
            ),
        );
        let engine = crate::common::engine(dir.path());
        crate::common::build_all(&engine).await;
        let (addr, _stop) = crate::common::start_server(engine).await;
        let url = format!("grpc+tls://{addr}");
        let full = ClientTls {
            ca: Some(certs.join("ca.pem")),
            cert: Some(certs.join("client.pem")),
            key: Some(certs.join("client.key")),
        };
        let mut c = MeshClient::connect_with(&url, &full).await.expect("mTLS connect");
        c.login("analyst", "analyst").await.expect("login over TLS");
        let (_, batches) = c.query("SELECT count(*) AS n FROM sales.gold.daily_revenue").await.expect("query over TLS");
        assert_eq!(batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 360);

        // Without a client certificate, or without TLS at all, nothing gets through.
        let no_cert = ClientTls {
            ca: Some(certs.join("ca.pem")),
            ..ClientTls::default()
        };
        let attempt = async {
            let mut c = MeshClient::connect_with(&url, &no_cert).await?;
            c.login("analyst", "analyst").await
        };
        assert!(attempt.await.is_err(), "a client without a certificate was served");
        let plain = async {
            let mut c = MeshClient::connect(&format!("grpc://{addr}")).await?;
            c.login("analyst", "analyst").await
        };
        assert!(plain.await.is_err(), "a plaintext client was served");
    });
}

#[test]
fn listings_reuse_known_schemas_instead_of_reopening_storage() {
    use arrow_flight::sql::CommandGetTables;

    runtime().block_on(async {
        let dir = crate::common::demo_mesh();
        // Snapshots expire at once: only the schema cache can answer a second listing.
        crate::common::edit(
            &dir.path().join("catalog/mesh.yaml"),
            "catalog_staleness_secs: 5",
            "catalog_staleness_secs: 0",
        );
        let engine = crate::common::engine(dir.path());
        crate::common::build_all(&engine).await;
        let (addr, _stop) = crate::common::start_server(engine).await;
        let mut c = client(addr).await;
        let tables = CommandGetTables {
            catalog: Some("sales".into()),
            db_schema_filter_pattern: Some("gold".into()),
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: true,
        };
        let info = c.get_tables(tables.clone()).await.unwrap();
        assert_eq!(rows(&mut c, info).await, 2);

        // Take the table's storage away: a listing that opened it would now fail or drop it.
        let table = dir.path().join("warehouse/sales/gold/daily_revenue");
        std::fs::rename(&table, dir.path().join("moved-away")).unwrap();
        let info = c.get_tables(tables).await.unwrap();
        assert_eq!(rows(&mut c, info).await, 2);
        let err = c
            .execute("SELECT * FROM sales.gold.daily_revenue".into(), None)
            .await
            .unwrap_err();
        assert_eq!(status(err).code(), Code::NotFound);
    });
}

/// Serves a demo mesh whose `server:` section gets `settings` added.
const SLOW: &str = "SELECT count(*) FROM sales.silver.clean_transactions a, sales.silver.clean_transactions b, \
                    sales.silver.clean_transactions x WHERE a.amount + b.amount + x.amount < 0";

#[test]
fn deadlines_row_caps_and_memory_limits_have_their_codes() {
    runtime().block_on(async {
        let (_dir, addr, _stop) = serve_with(
            "  query_timeout_secs: 1\n  max_result_rows: 100\n  memory_limit_mb: 8\n",
            true,
        )
        .await;
        let mut c = client(addr).await;
        let s = error_of(&mut c, SLOW).await;
        assert_eq!(s.code(), Code::DeadlineExceeded, "{s:?}");
        assert_eq!(s.message(), "the query ran longer than 1 s (server.query_timeout_secs)");

        let s = error_of(&mut c, "SELECT * FROM sales.silver.clean_transactions").await;
        assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
        assert!(s.message().contains("more than 100 rows"), "{}", s.message());
        let info = c.execute("SELECT * FROM sales.silver.clean_transactions LIMIT 100".into(), None).await.unwrap();
        assert_eq!(rows(&mut c, info).await, 100);

        // A hash join's build side cannot spill: past the shared pool, the query fails alone.
        let s = error_of(
            &mut c,
            "SELECT count(*) FROM generate_series(1, 3000000) a JOIN generate_series(1, 3000000) b ON a.value = b.value",
        )
        .await;
        assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
        let info = c.execute("SELECT 1".into(), None).await.unwrap();
        assert_eq!(rows(&mut c, info).await, 1);
    });
}

#[test]
fn a_full_server_refuses_with_resource_exhausted_then_recovers() {
    runtime().block_on(async {
        let (_dir, addr, _stop) = serve_with(
            "  max_concurrent_queries: 1\n  max_queued_queries: 0\n",
            true,
        )
        .await;
        let mut a = client(addr).await;
        let mut b = client_as(addr, "analyst").await;
        // The first query holds the only slot while its stream is open.
        let info = a.execute(SLOW.into(), None).await.unwrap();
        let held = a
            .do_get(info.endpoint[0].ticket.clone().unwrap())
            .await
            .expect("first query runs");
        let s = error_of(&mut b, "SELECT 1").await;
        assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
        assert!(
            s.message().contains("the server is busy"),
            "{}",
            s.message()
        );

        // Dropping the stream stops that query and frees the slot.
        drop(held);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let info = b
                .execute("SELECT 1".into(), None)
                .await
                .expect("planning needs no slot");
            if let Ok(stream) = b.do_get(info.endpoint[0].ticket.clone().unwrap()).await
                && stream.try_collect::<Vec<_>>().await.is_ok()
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the slot was never freed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn a_dataset_a_query_opened_is_listed_with_its_columns_without_reopening_storage() {
    use arrow_flight::sql::CommandGetTables;

    runtime().block_on(async {
        let dir = crate::common::demo_mesh();
        // Snapshots expire at once: only the schema kept when the query opened the table can
        // answer the listing.
        crate::common::edit(
            &dir.path().join("catalog/mesh.yaml"),
            "catalog_staleness_secs: 5",
            "catalog_staleness_secs: 0",
        );
        let engine = crate::common::engine(dir.path());
        crate::common::build_all(&engine).await;
        let (addr, _stop) = crate::common::start_server(engine).await;
        let mut c = client(addr).await;
        crate::common::query(&mut c, "SELECT count(*) FROM sales.gold.daily_revenue").await;

        let table = dir.path().join("warehouse/sales/gold/daily_revenue");
        std::fs::rename(&table, dir.path().join("moved-away")).unwrap();
        let tables = CommandGetTables {
            catalog: Some("sales".into()),
            db_schema_filter_pattern: Some("gold".into()),
            table_name_filter_pattern: Some("daily_revenue".into()),
            table_types: vec![],
            include_schema: true,
        };
        let info = c.get_tables(tables).await.unwrap();
        assert_eq!(rows(&mut c, info).await, 1, "listed from the kept schema");
    });
}
