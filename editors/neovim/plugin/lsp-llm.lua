-- lsp-llm's commands; the server starts with require("lsp-llm").setup({...}).
if vim.g.loaded_lsp_llm then
  return
end
vim.g.loaded_lsp_llm = true

vim.api.nvim_create_user_command("LspLlmChat", function(opts)
  local chat = require("lsp-llm.chat")
  local source = vim.api.nvim_get_current_buf()
  local first, last = nil, nil
  if opts.range > 0 then
    first, last = opts.line1, opts.line2
  end
  local function ask(question)
    if question and vim.trim(question) ~= "" then
      chat.ask(question, source, first, last)
    end
  end
  if opts.args ~= "" then
    ask(opts.args)
  else
    vim.ui.input({ prompt = "Ask lsp-llm: " }, ask)
  end
end, { nargs = "*", range = true, desc = "lsp-llm: ask about the selection or the buffer" })

vim.api.nvim_create_user_command("LspLlmStop", function()
  require("lsp-llm.chat").stop()
end, { desc = "lsp-llm: stop the chat's answer" })

vim.api.nvim_create_user_command("LspLlmChatClear", function()
  require("lsp-llm.chat").clear()
end, { desc = "lsp-llm: start a new conversation" })

vim.api.nvim_create_user_command("LspLlmModel", function(opts)
  require("lsp-llm").select_model(opts.args)
end, {
  nargs = "?",
  complete = function()
    return require("lsp-llm").MODELS
  end,
  desc = "lsp-llm: serve another model",
})

vim.api.nvim_create_user_command("LspLlmStatus", function()
  local line = require("lsp-llm").statusline()
  vim.notify(line ~= "" and line or "lsp-llm: not running")
end, { desc = "lsp-llm: the server's status" })
