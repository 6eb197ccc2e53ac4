//! Requests whose bytes are not a Flight SQL message get the user's error in plain words.
//!
//! arrow-flight decodes tickets and command descriptors before any handler of ours runs, and
//! answers bytes that do not decode with the decoder's debug dump (`DecodeError { description:
//! ... }`, as InvalidArgument, or as Internal when an `Any` holds a known type with a broken
//! body). This wrapper decodes them first, the same way, and answers InvalidArgument "not a
//! ticket of this server"; everything that decodes goes on to the Flight SQL service untouched.

use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{Any, Command};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::FlightSql;
use crate::error::Error;

/// [`FlightSql`] behind a check that tickets and commands decode.
pub struct Undecodable(pub FlightSql);

/// `Ok` when `bytes` are a Flight SQL message; else the user's error naming `what` they were.
fn decodes(bytes: &[u8], what: &str) -> Result<(), Status> {
    let any = Any::decode(bytes).map_err(|_| not_ours(what))?;
    Command::try_from(any).map_err(|_| not_ours(what))?;
    Ok(())
}

fn not_ours(what: &str) -> Status {
    Error::user(format!(
        "not a {what} of this server: the bytes sent do not decode as a Flight SQL message \
         ({what}s come from this server's answers, or from a Flight SQL client library)"
    ))
    .into()
}

fn descriptor_decodes(descriptor: &FlightDescriptor) -> Result<(), Status> {
    if descriptor.r#type == DescriptorType::Cmd as i32 {
        decodes(&descriptor.cmd, "command")?;
    }
    Ok(())
}

#[tonic::async_trait]
impl FlightService for Undecodable {
    type HandshakeStream = <FlightSql as FlightService>::HandshakeStream;
    type ListFlightsStream = <FlightSql as FlightService>::ListFlightsStream;
    type DoGetStream = <FlightSql as FlightService>::DoGetStream;
    type DoPutStream = <FlightSql as FlightService>::DoPutStream;
    type DoExchangeStream = <FlightSql as FlightService>::DoExchangeStream;
    type DoActionStream = <FlightSql as FlightService>::DoActionStream;
    type ListActionsStream = <FlightSql as FlightService>::ListActionsStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.0.handshake(request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.0.list_flights(request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        descriptor_decodes(request.get_ref())?;
        self.0.get_flight_info(request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        descriptor_decodes(request.get_ref())?;
        self.0.poll_flight_info(request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        descriptor_decodes(request.get_ref())?;
        self.0.get_schema(request).await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        decodes(&request.get_ref().ticket, "ticket")?;
        self.0.do_get(request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        self.0.do_put(request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.0.do_exchange(request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        self.0.do_action(request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.0.list_actions(request).await
    }
}
