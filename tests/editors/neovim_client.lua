-- Drives lsp-llm from Neovim's built-in LSP client (0.7+), headless.
-- Env: LSP_LLM_CMD (JSON array), LSP_LLM_SETTINGS (JSON), LSP_LLM_FILE, LSP_LLM_OUT.
local cmd = vim.fn.json_decode(os.getenv("LSP_LLM_CMD"))
local settings = vim.fn.json_decode(os.getenv("LSP_LLM_SETTINGS"))
local out = {}
local write_result = dofile(vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/neovim_result.lua")
local function finish(code) write_result(out, code) end
vim.cmd("edit " .. os.getenv("LSP_LLM_FILE"))
local bufnr = vim.api.nvim_get_current_buf()
local client_id = vim.lsp.start_client({
  name = "lsp-llm", cmd = cmd, init_options = settings,
  root_dir = vim.fn.getcwd(),
  handlers = { ["lspLlm/status"] = function(_, result) out.status = result.state end },
})
vim.lsp.buf_attach_client(bufnr, client_id)
local client = vim.lsp.get_client_by_id(client_id)
local ok = vim.wait(120000, function() return out.status == "ready" or out.status == "error" end, 100)
if not ok or out.status ~= "ready" then out.error = "model not ready"; return finish(1) end
-- Completion at the end of line 9 ("    return 2 * "), 0-based line 8.
local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) }, position = { line = 8, character = 15 } }
local resp = client.request_sync("textDocument/completion", params, 60000, bufnr)
if not resp or resp.err then out.error = vim.inspect(resp); return finish(1) end
local items = resp.result.items or resp.result
out.completion = items[1] and items[1].textEdit.newText or ""
out.omnifunc_items = #vim.lsp.util.text_document_completion_list_to_complete_items(resp.result, "")
-- Code actions on the stub `area` (line 5, 0-based 4), then resolve the docstring one.
local ca = client.request_sync("textDocument/codeAction", {
  textDocument = params.textDocument,
  range = { start = { line = 4, character = 4 }, ["end"] = { line = 4, character = 4 } },
  context = { diagnostics = {} } }, 60000, bufnr)
out.actions = {}
for _, a in ipairs(ca.result or {}) do table.insert(out.actions, a.title) end
local chosen = nil
for _, a in ipairs(ca.result or {}) do if a.title == "lsp-llm: Add docstring" then chosen = a end end
local resolved = client.request_sync("codeAction/resolve", chosen, 60000, bufnr)
if not resolved or resolved.err then out.error = vim.inspect(resolved); return finish(1) end
vim.lsp.util.apply_workspace_edit(resolved.result.edit, client.offset_encoding)
out.line5 = vim.api.nvim_buf_get_lines(bufnr, 4, 5, false)[1]
client.stop()
finish(0)
