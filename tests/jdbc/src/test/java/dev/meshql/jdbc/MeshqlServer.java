package dev.meshql.jdbc;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A real {@code meshql serve} on a free loopback port, over a private copy of the bundled demo
 * mesh — started as the Python client suite starts it (tests/clients/conftest.py).
 *
 * <p>The server prints its address once the port is bound; nothing sleeps or polls. Its output is
 * drained for as long as it runs (into target/meshql-logs/NAME.log), and {@link #close()} stops it:
 * SIGTERM, then SIGKILL after 10 s.
 */
public final class MeshqlServer implements AutoCloseable {
  /** A long-lived admin token the server accepts (MESHQL_ADMIN_TOKEN); test-only. */
  public static final String ADMIN_TOKEN = "jdbc-test-admin-token-0123456789";

  private static final Pattern LISTENING =
      Pattern.compile("on (grpc(?:\\+tls)?://127\\.0\\.0\\.1:(\\d+))");
  /** Bound on the start: building the demo warehouse takes seconds, even on a busy machine. */
  private static final long START_TIMEOUT_SECS = 180;

  private final String name;
  private final Path mesh;
  private final Process process;
  private final Path logFile;
  private final List<String> output = new ArrayList<>();
  private final String uri;
  private final int port;
  private final Thread shutdownHook;

  private MeshqlServer(String name, UnaryOperator<String> editMeshYaml, boolean copyTlsFixtures)
      throws IOException {
    this.name = name;
    Path binary = binary();
    Path repo = repo();
    mesh = Files.createTempDirectory("meshql-jdbc-" + name + "-");
    copyTree(repo.resolve("catalog"), mesh.resolve("catalog"));
    copyTree(repo.resolve("sql"), mesh.resolve("sql"));
    if (copyTlsFixtures) {
      copyTree(repo.resolve("tests/fixtures/tls"), mesh.resolve("tls"));
    }
    Path yaml = mesh.resolve("catalog/mesh.yaml");
    Files.writeString(yaml, editMeshYaml.apply(Files.readString(yaml)));

    Path logs = Paths.get(System.getProperty("meshql.logs", "target/meshql-logs"));
    Files.createDirectories(logs);
    logFile = logs.resolve(name + ".log");

    ProcessBuilder builder =
        new ProcessBuilder(
                binary.toString(), "--mesh", mesh.toString(), "serve", "--addr", "127.0.0.1:0")
            .redirectErrorStream(true);
    builder.environment().put("MESHQL_ADMIN_TOKEN", ADMIN_TOKEN);
    // Warnings (the default) plus one structured line per request: what each RPC answered.
    builder.environment().put("RUST_LOG", "warn,meshql::audit=info");
    try {
      process = builder.start();
    } catch (IOException e) {
      deleteTree(mesh);
      throw e;
    }
    shutdownHook = new Thread(this::stop, "meshql-" + name + "-shutdown");
    Runtime.getRuntime().addShutdownHook(shutdownHook);

    CompletableFuture<String> listening = new CompletableFuture<>();
    Thread drain = new Thread(() -> drain(listening), "meshql-" + name + "-output");
    drain.setDaemon(true);
    drain.start();
    try {
      uri = listening.get(START_TIMEOUT_SECS, TimeUnit.SECONDS);
    } catch (TimeoutException | InterruptedException | ExecutionException e) {
      close();
      throw new IllegalStateException(
          "meshql serve (" + binary + ") did not print its address within "
              + START_TIMEOUT_SECS + " s; its output:\n" + String.join("\n", output()),
          e);
    }
    port = Integer.parseInt(uri.substring(uri.lastIndexOf(':') + 1));
  }

  /** The demo mesh as it is. */
  public static MeshqlServer plain() throws IOException {
    return new MeshqlServer("plain", yaml -> yaml, false);
  }

  /**
   * The demo mesh served over TLS with the test certificates of tests/fixtures/tls (copied into
   * the mesh folder; `server.tls` paths are relative to it).
   */
  public static MeshqlServer tls() throws IOException {
    return new MeshqlServer(
        "tls",
        yaml -> {
          if (!yaml.contains("\nserver:\n")) {
            throw new IllegalStateException("catalog/mesh.yaml has no `server:` block to edit");
          }
          return yaml.replace(
              "\nserver:\n",
              "\nserver:\n  tls:\n    cert: tls/server.pem\n    key: tls/server.key\n");
        },
        true);
  }

  /**
   * The demo mesh with `server.view_types: true`: Utf8View/BinaryView columns are sent as they
   * are instead of as Utf8/Binary.
   */
  public static MeshqlServer viewTypes() throws IOException {
    return new MeshqlServer(
        "view-types",
        yaml -> {
          if (!yaml.contains("\nserver:\n")) {
            throw new IllegalStateException("catalog/mesh.yaml has no `server:` block to edit");
          }
          return yaml.replace("\nserver:\n", "\nserver:\n  view_types: true\n");
        },
        false);
  }

  private void drain(CompletableFuture<String> listening) {
    try (BufferedReader reader =
            new BufferedReader(
                new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        PrintWriter log =
            new PrintWriter(Files.newBufferedWriter(logFile, StandardCharsets.UTF_8), true)) {
      String line;
      while ((line = reader.readLine()) != null) {
        log.println(line);
        synchronized (output) {
          output.add(line);
        }
        if (!listening.isDone()) {
          Matcher m = LISTENING.matcher(line);
          if (m.find()) {
            listening.complete(m.group(1));
          }
        }
      }
    } catch (IOException e) {
      listening.completeExceptionally(e);
      return;
    }
    listening.completeExceptionally(
        new IllegalStateException("meshql serve exited before listening"));
  }

  private static Path binary() {
    String bin = System.getenv("MESHQL_BIN");
    if (bin == null || bin.isBlank()) {
      throw new IllegalStateException(
          "MESHQL_BIN is not set: export MESHQL_BIN=/path/to/meshql (e.g. target/release/meshql)"
              + " before running the JDBC suite");
    }
    Path path = Paths.get(bin).toAbsolutePath();
    if (!Files.isRegularFile(path) || !Files.isExecutable(path)) {
      throw new IllegalStateException(
          "MESHQL_BIN=" + bin + " is not an executable file (build it with"
              + " `cargo build --release` first)");
    }
    return path;
  }

  private static Path repo() {
    Path repo = Paths.get(System.getProperty("meshql.repo", "../..")).toAbsolutePath().normalize();
    if (!Files.isRegularFile(repo.resolve("catalog/mesh.yaml"))) {
      throw new IllegalStateException("no catalog/mesh.yaml under " + repo + " (meshql.repo)");
    }
    return repo;
  }

  private static void copyTree(Path from, Path to) throws IOException {
    Files.walkFileTree(
        from,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs)
              throws IOException {
            Files.createDirectories(to.resolve(from.relativize(dir).toString()));
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
              throws IOException {
            Files.copy(
                file,
                to.resolve(from.relativize(file).toString()),
                StandardCopyOption.REPLACE_EXISTING);
            return FileVisitResult.CONTINUE;
          }
        });
  }

  /** e.g. grpc://127.0.0.1:40123 */
  public String uri() {
    return uri;
  }

  public int port() {
    return port;
  }

  public Path meshDir() {
    return mesh;
  }

  /** Everything the server printed so far (stdout and stderr). */
  public List<String> output() {
    synchronized (output) {
      return new ArrayList<>(output);
    }
  }

  /** The server's process id. */
  public long pid() {
    return process.pid();
  }

  /** CPU time (user + system) the server has used so far, in milliseconds (Linux /proc). */
  public long cpuMillis() {
    try {
      String stat = Files.readString(Paths.get("/proc/" + process.pid() + "/stat"));
      // Fields after the command name (which is in parentheses): state is field 3.
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]); // utime, stime
      return ticks * 10; // USER_HZ is 100 on Linux
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Waits (at most {@code maxSeconds}) until the server uses less than a fifth of one core over a
   * second: whatever a cancelled or abandoned query was doing has stopped. Answers whether it did.
   */
  public boolean awaitIdle(int maxSeconds) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(maxSeconds);
    while (System.nanoTime() < deadline) {
      long before = cpuMillis();
      Thread.sleep(1000);
      if (cpuMillis() - before < 200) {
        return true;
      }
    }
    return false;
  }

  /** Whether the server process is still running (it must survive every test). */
  public boolean isAlive() {
    return process.isAlive();
  }

  private synchronized void stop() {
    if (process.isAlive()) {
      process.destroy(); // SIGTERM: the server finishes running requests, then exits
      try {
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
          process.destroyForcibly();
          process.waitFor(10, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        process.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
  }

  @Override
  public void close() {
    stop();
    try {
      Runtime.getRuntime().removeShutdownHook(shutdownHook);
    } catch (IllegalStateException shuttingDown) {
      // the JVM is exiting: the hook runs (or ran) anyway
    }
    deleteTree(mesh);
  }

  private static void deleteTree(Path root) {
    try {
      Files.walkFileTree(
          root,
          new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
                throws IOException {
              Files.deleteIfExists(file);
              return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException exc)
                throws IOException {
              Files.deleteIfExists(dir);
              return FileVisitResult.CONTINUE;
            }
          });
    } catch (IOException e) {
      throw new UncheckedIOException("cannot remove " + root, e);
    }
  }

  @Override
  public String toString() {
    return "meshql serve (" + name + ") on " + uri;
  }
}
