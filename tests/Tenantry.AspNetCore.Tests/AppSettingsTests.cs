using Tenantry.AspNetCore;

namespace Tenantry.AspNetCore.Tests;

public sealed class AppSettingsTests
{
    [Fact]
    public void An_empty_data_dir_is_named_as_the_bad_setting_instead_of_failing_the_check()
    {
        var problems = SettingProblems.Find(new TenantryAppOptions { DataDir = "" }, TenantryAppOptions.Section);

        var line = Assert.Single(problems);
        Assert.StartsWith("Tenantry:App:DataDir:", line, StringComparison.Ordinal);
    }
}
