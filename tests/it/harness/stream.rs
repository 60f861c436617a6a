//! The live stream (`/api/v1/stream`) through a real WebSocket client.

use super::api::Api;
use futures_util::StreamExt;
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one message may take to arrive.
const MESSAGE_LIMIT: Duration = Duration::from_secs(8);

/// One subscriber's connection.
pub struct Stream(WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>);

impl Stream {
    /// The next text message as JSON (pings and pongs skipped); bounded.
    pub async fn next_json(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(MESSAGE_LIMIT, self.0.next())
                .await
                .expect("a stream message in time")
                .expect("the stream is open")
                .expect("a good frame");
            match msg {
                Message::Text(t) => {
                    return serde_json::from_str(t.as_str()).expect("JSON text frames")
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The `data` of the next message of type `kind`, others skipped; bounded as a whole.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let wanted = async {
            loop {
                let m = self.next_json().await;
                if m["type"] == kind {
                    return m["data"].clone();
                }
            }
        };
        tokio::time::timeout(MESSAGE_LIMIT, wanted)
            .await
            .unwrap_or_else(|_| panic!("no {kind} message in {MESSAGE_LIMIT:?}"))
    }

    /// The next frame, whatever it is; `None` once the stream has ended. Not bounded: the
    /// caller bounds it.
    pub async fn next_frame(&mut self) -> Option<Result<Message, Error>> {
        self.0.next().await
    }
}

impl Api {
    fn stream_url(&self) -> String {
        format!("{}/api/v1/stream", self.url.replacen("http", "ws", 1))
    }

    /// Subscribes; the token, if any, goes in `access_token` as a browser sends it.
    pub async fn try_stream(&self) -> Result<Stream, Error> {
        let url = match self.token() {
            Some(t) => format!("{}?access_token={t}", self.stream_url()),
            None => self.stream_url(),
        };
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
        Ok(Stream(ws))
    }

    pub async fn stream(&self) -> Stream {
        self.try_stream().await.expect("the stream upgrades")
    }

    /// Subscribes over a socket with a receive buffer of `bytes`, so that a subscriber that
    /// does not read backs the daemon's writes up quickly.
    pub async fn stream_with_recv_buffer(&self, bytes: u32) -> Stream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        let addr = self.url.trim_start_matches("http://");
        let tcp = socket.connect(addr.parse().unwrap()).await.unwrap();
        let (ws, _) =
            tokio_tungstenite::client_async(self.stream_url().as_str(), MaybeTlsStream::Plain(tcp))
                .await
                .expect("the stream upgrades");
        Stream(ws)
    }
}
