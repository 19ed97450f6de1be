# Homebrew formula: `brew install --build-from-source ./packaging/homebrew/codex-proxy.rb`
# (or from a tap). Builds both binaries with cargo, installs completions and the documented
# config, and runs the daemon as your user with `brew services start codex-proxy`.
class CodexProxy < Formula
  desc "Use your ChatGPT account's Codex models from any OpenAI-compatible client"
  homepage "https://example.invalid/codex-proxy"
  url "https://example.invalid/codex-proxy/archive/refs/tags/v0.1.0.tar.gz"
  # Replaced by the release process with the tarball's checksum.
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license any_of: ["MIT", "Apache-2.0"]
  head "https://example.invalid/codex-proxy.git", branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args(path: "daemon")
    system "cargo", "install", *std_cargo_args(path: "ctl")
    generate_completions_from_executable(bin/"codexctl", "completions")
    (etc/"codex-proxy").mkpath
    # The documented defaults; an existing config.toml is never overwritten.
    (etc/"codex-proxy").install "config/codex-proxy.toml" => "config.toml.default"
    cp etc/"codex-proxy/config.toml.default", etc/"codex-proxy/config.toml" unless (etc/"codex-proxy/config.toml").exist?
    (var/"log").mkpath
  end

  def caveats
    <<~EOS
      Start the service and sign in:
        brew services start codex-proxy
        codexctl login
      Then point clients at http://127.0.0.1:8080/v1 with the key from `codexctl key show`.
      Config: #{etc}/codex-proxy/config.toml  State: ~/.local/state/codex-proxy
      Log: #{var}/log/codex-proxy.log
    EOS
  end

  # Runs as you: state and control socket in ~/.local/state/codex-proxy, where codexctl looks.
  service do
    run [opt_bin/"codex-proxy", "--config", etc/"codex-proxy/config.toml"]
    keep_alive true
    process_type :background
    log_path var/"log/codex-proxy.log"
    error_log_path var/"log/codex-proxy.log"
  end

  test do
    port = free_port
    socket = testpath/"run/control.sock"
    ENV["CODEX_PROXY_STATE_DIR"] = (testpath/"state").to_s
    ENV["CODEX_PROXY_SOCKET"] = socket.to_s
    pid = spawn bin/"codex-proxy", "--port", port.to_s
    begin
      30.times do
        break if socket.exist?

        sleep 0.2
      end
      output = shell_output("#{bin}/codexctl status")
      assert_match "codex-proxy #{version}", output
      assert_match "http://127.0.0.1:#{port}", output
      assert_match "No account yet", output
    ensure
      Process.kill("TERM", pid)
      Process.wait(pid)
    end
  end
end
