-- Drives lsp-llm from Neovim 0.11's LSP set-up as the README gives it (vim.lsp.config +
-- vim.lsp.enable, completion through vim.lsp.completion), headless.
-- Env: LSP_LLM_CMD (JSON array) or LSP_LLM_TCP_PORT, LSP_LLM_SETTINGS (JSON), LSP_LLM_FILE,
-- LSP_LLM_OUT.
local out = { status = nil }
local write_result = dofile(vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/neovim_result.lua")
local function finish(code) write_result(out, code) end

-- The user's configuration (docs/editors.md, "Neovim 0.11+ without the plugin"; with
-- LSP_LLM_TCP_PORT, docs/editors.md's daemon set-up for it: a running daemon).
local port = os.getenv("LSP_LLM_TCP_PORT")
local init_options = vim.fn.json_decode(os.getenv("LSP_LLM_SETTINGS"))
if port then -- the daemon's token, from the file it wrote for this user
  local dir = os.getenv("XDG_RUNTIME_DIR") or (os.getenv("HOME") .. "/.cache")
  init_options.authToken = vim.fn.readfile(dir .. "/lsp-llm/tcp-" .. port .. ".token")[1]
end
vim.lsp.config("lsp-llm", {
  cmd = port and vim.lsp.rpc.connect("127.0.0.1", tonumber(port))
    or vim.fn.json_decode(os.getenv("LSP_LLM_CMD")),
  filetypes = { "python", "javascript", "javascriptreact", "typescript", "typescriptreact",
                "go", "rust", "java", "c", "cpp", "lua", "sh" },
  root_markers = { ".git" },
  init_options = init_options,
  handlers = { ["lspLlm/status"] = function(_, result) out.status = result.state end },
})
vim.lsp.enable("lsp-llm")
vim.api.nvim_create_autocmd("LspAttach", {
  callback = function(ev)
    local client = vim.lsp.get_client_by_id(ev.data.client_id)
    if client and client.name == "lsp-llm" then
      vim.lsp.completion.enable(true, client.id, ev.buf, { autotrigger = false })
      out.attached = true
    end
  end,
})

vim.cmd("edit " .. os.getenv("LSP_LLM_FILE"))
local bufnr = vim.api.nvim_get_current_buf()
local ok = vim.wait(120000, function() return out.status == "ready" or out.status == "error" end, 100)
if not ok or out.status ~= "ready" then out.error = "model not ready"; return finish(1) end
local client = vim.lsp.get_clients({ bufnr = bufnr, name = "lsp-llm" })[1]

-- Completion at the end of "    return 2 * " (0-based line 8): the items Neovim's own
-- completion source builds from the server's answer.
vim.api.nvim_win_set_cursor(0, { 9, 15 })
local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
local resp = client:request_sync("textDocument/completion", params, 60000, bufnr)
if not resp or resp.err then out.error = vim.inspect(resp); return finish(1) end
local items = vim.lsp.completion._lsp_to_complete_items(resp.result, "", client.id)
out.completion_items = #items
out.completion = items[1] and items[1].word or ""

-- The code action as a user runs it: vim.lsp.buf.code_action with apply=true resolves the
-- chosen action (codeAction/resolve) and applies its edit.
vim.api.nvim_win_set_cursor(0, { 5, 4 })
vim.lsp.buf.code_action({
  apply = true,
  filter = function(a) return a.title == "lsp-llm: Add docstring" end,
})
vim.wait(60000, function()
  local l = vim.api.nvim_buf_get_lines(bufnr, 4, 5, false)[1]
  return l and l:match('^%s+"""') ~= nil
end, 100)
out.line5 = vim.api.nvim_buf_get_lines(bufnr, 4, 5, false)[1]

-- A function the user has only started (a header and an indented blank line, code that
-- does not parse): the actions Neovim is offered with the cursor on that blank line.
local n = vim.api.nvim_buf_line_count(bufnr)
vim.api.nvim_buf_set_lines(bufnr, n, n, false, { "", "", "def perimeter(r):", "    " })
vim.api.nvim_win_set_cursor(0, { n + 4, 4 })
local range_params = vim.lsp.util.make_range_params(0, client.offset_encoding)
range_params.context = { diagnostics = {} }
local offered = client:request_sync("textDocument/codeAction", range_params, 60000, bufnr)
out.started_actions = {}
for _, a in ipairs((offered and offered.result) or {}) do
  table.insert(out.started_actions, a.title)
end
client:stop()
finish(0)
